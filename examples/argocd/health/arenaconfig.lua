-- Argo CD health of an ArenaConfig (omnia.altairalabs.ai/v1alpha1), from the status the operator writes:
-- status.phase (Pending, Ready, Invalid), status.observedGeneration and the kstatus conditions Ready and Stalled.
-- Pending (waiting for the source) is Progressing, Invalid is Degraded.
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
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
elseif status.phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Invalid")
elseif ready ~= nil then
  -- Pending: waiting for the ArenaSource's artifact (Ready False or Unknown until it arrives)
  hs.message = describe(ready, status.phase or "Pending")
end
return hs
