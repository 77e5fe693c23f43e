-- Argo CD health of an ArenaSource (omnia.altairalabs.ai/v1alpha1), from the status the operator writes:
-- status.phase (Pending, Ready, Error, Suspended), status.observedGeneration, status.artifact.revision and the
-- kstatus conditions Ready, Stalled and FetchFailed (abnormal-true, as Flux's sources).
local hs = {status = "Progressing", message = "Waiting for the arena operator"}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended"
  return hs
end
if obj.status == nil then
  return hs
end
local status = obj.status
local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the arena operator to observe generation " .. generation
  return hs
end

local ready = condition("Ready")
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
elseif status.phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "Suspended"
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local revision = status.artifact ~= nil and status.artifact.revision or nil
  hs.message = revision ~= nil and ("Artifact " .. revision) or describe(ready, "Ready")
elseif status.phase == "Error" then
  -- a fetch or the bundle failed: the last good artifact (if any) is still served, and the fetch is retried
  hs.status = "Degraded"
  hs.message = describe(ready, "Error")
elseif ready ~= nil then
  hs.message = describe(ready, status.phase or "Pending")
end
return hs
