-- Argo CD health of a ModelDeployment (serving.modeldeploy.dev/v1alpha1), from the status the operator writes.
-- Argo CD key: resource.customizations.health.serving.modeldeploy.dev_ModelDeployment (see docs/argocd.md).
-- Phases: Pending, Progressing, Healthy, Degraded, Paused; conditions Ready, Progressing, Degraded.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(value, fallback)
  if value ~= nil and value ~= "" then
    return value
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata and obj.metadata.generation
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report a status"
  return hs
end
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local message = text(status.message, phase)
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Progressing" or phase == "Pending" then
  hs.status = "Progressing"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "Degraded" then
  hs.status = "Degraded"
else
  -- No (or an unknown) phase: decide from the conditions, and never answer Unknown.
  local degraded = condition(status, "Degraded")
  local ready = condition(status, "Ready")
  if degraded ~= nil and degraded.status == "True" then
    hs.status = "Degraded"
    message = text(degraded.message, text(degraded.reason, "Degraded"))
  elseif ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
    message = text(ready.message, "Ready")
  else
    hs.status = "Progressing"
    message = text(message, "Waiting for the ModelDeployment to become ready")
  end
end
hs.message = text(message, hs.status)
return hs
