-- Argo CD health of an ArenaJob (omnia.altairalabs.ai/v1alpha1), from the status the operator writes:
-- status.phase (Pending, Running, Succeeded, Failed, Cancelled), status.observedGeneration, and the kstatus
-- conditions Ready (True once Succeeded, False once Failed, Unknown meanwhile) and Stalled (an unusable spec).
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
  return hs
end

local progress = status.progressText
if status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "Succeeded" .. (progress ~= nil and (": " .. progress .. " work units") or "")
elseif status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(ready, status.message or "Failed")
elseif status.phase == "Cancelled" then
  hs.status = "Suspended"
  hs.message = status.message or "Cancelled"
elseif status.phase == "Running" then
  hs.message = "Running" .. (progress ~= nil and (": " .. progress .. " work units") or "")
  if ready ~= nil and ready.status == "False" then
    -- e.g. RedisUnavailable: retried by the operator, said here
    hs.message = hs.message .. " (" .. describe(ready, "not ready") .. ")"
  end
elseif ready ~= nil then
  hs.message = describe(ready, status.phase or "Pending")
elseif status.phase ~= nil then
  hs.message = status.phase
end
return hs
