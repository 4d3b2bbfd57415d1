-- Argo CD health of an apps/Deployment that Ballast may hold (resource.customizations.health.apps_Deployment).
--
-- Argo CD shows a paused Deployment as Suspended. Ballast pauses a Deployment while the release of its new
-- pod template runs beside it (canary, analysis, approval, gates), so this check reports:
--   * held by Ballast (paused, with Ballast's ballast.dev/pending-revision mark): Progressing;
--   * rolled back by Ballast, with no rollout since: Degraded;
--   * otherwise Argo CD's own Deployment logic (gitops-engine pkg/health/health_deployment.go), so a
--     promoted release, whose native rollout completes, is Healthy.
-- Argo CD runs a custom check *instead of* its built-in one, hence the copy of its essentials below.
-- Needs resource.customizations.useOpenLibs.apps_Deployment: "true" (string and math; see argocd-cm.yaml).

local PENDING = "ballast.dev/pending-revision"
local ROLLED_BACK = "ballast.dev/rolled-back-revisions"
-- A rollback un-pauses the Deployment and restores its template in one write; kube-controller-manager then
-- turns the Progressing condition True within a second or so (measured: the same second). A later release's
-- rollout starts no sooner than that release's canary steps after it (8 s with the tests' fastest tier), so a
-- transition this close to the newest rollback is the rollback's own; the margin also absorbs the seconds
-- precision of both times and a little clock skew between the operator and kube-controller-manager.
local SETTLE_SECONDS = 3

local function condition(status, kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- Seconds since 1970 of an RFC 3339 time in UTC (the API server writes "Z", Ballast "+00:00"); fractions
-- are dropped. Days from the civil date after H. Hinnant's algorithm, so the local time zone never matters.
local function epoch(stamp)
  if type(stamp) ~= "string" then
    return nil
  end
  local y, m, d, hh, mm, ss = string.match(stamp, "^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)")
  if y == nil then
    return nil
  end
  y, m = tonumber(y), tonumber(m)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + tonumber(d) - 1
  local days = era * 146097 + yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

-- The newest entry of Ballast's rollback record, {"<template hash>": "<RFC 3339 time>", ...}.
local function newest_rollback(record)
  local revision, stamp, at = nil, nil, nil
  for key, value in string.gmatch(record or "", '"(%x+)"%s*:%s*"([^"]+)"') do
    local when = epoch(value)
    if when ~= nil and (at == nil or when > at) then
      revision, stamp, at = key, value, when
    end
  end
  return revision, stamp, at
end

local hs = {}
local metadata = obj.metadata or {}
local annotations = metadata.annotations or {}
local spec = obj.spec or {}
local status = obj.status or {}
local progressing = condition(status, "Progressing")

if spec.paused then
  if annotations[PENDING] ~= nil then
    hs.status = "Progressing"
    hs.message = "Ballast holds pod template " .. annotations[PENDING] .. " while its release runs (canary, " ..
      "analysis, approval or a gate); `kubectl ballast status -n " .. (metadata.namespace or "default") ..
      "` shows where it stands"
  else
    hs.status = "Suspended"
    hs.message = "Deployment is paused"
  end
  return hs
end

local revision, stamp, rolled_back_at = newest_rollback(annotations[ROLLED_BACK])
local rollout_since = progressing and epoch(progressing.lastTransitionTime)
if rolled_back_at ~= nil and rollout_since ~= nil and rollout_since <= rolled_back_at + SETTLE_SECONDS then
  hs.status = "Degraded"
  hs.message = "Ballast rolled back pod template " .. revision .. " at " .. stamp .. " and runs the previous " ..
    "one; `kubectl ballast history` says why. Fix the change and sync again (the same template again needs " ..
    "a new ballast.dev/retry value)"
  return hs
end

-- Argo CD's built-in Deployment health, as kubectl rollout status judges a rollout.
if (metadata.generation or 0) <= (status.observedGeneration or 0) then
  local updated, replicas = status.updatedReplicas or 0, status.replicas or 0
  if progressing ~= nil and progressing.reason == "ProgressDeadlineExceeded" then
    hs.status = "Degraded"
    hs.message = "Deployment \"" .. (metadata.name or "") .. "\" exceeded its progress deadline"
  elseif spec.replicas ~= nil and updated < spec.replicas then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: " .. updated .. " out of " .. spec.replicas ..
      " new replicas have been updated..."
  elseif replicas > updated then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: " .. (replicas - updated) .. " old replicas are pending termination..."
  elseif (status.availableReplicas or 0) < updated then
    hs.status = "Progressing"
    hs.message = "Waiting for rollout to finish: " .. (status.availableReplicas or 0) .. " of " .. updated ..
      " updated replicas are available..."
  else
    hs.status = "Healthy"
  end
else
  hs.status = "Progressing"
  hs.message = "Waiting for rollout to finish: observed deployment generation less than desired generation"
end
return hs
