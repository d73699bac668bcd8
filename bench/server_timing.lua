-- wrk script for bench/http.sh: percentiles of the Server-Timing entries bffd reports, next to wrk's own.
-- The gap between wrk's latency and bffd's "total" is what the HTTP front and the network add.
local names = {"catalog", "inventory", "reviews", "recommendations", "promotions", "total"}
-- One flat global table per entry: wrk copies globals between its threads and the summary, nested tables crash it.
for _, name in ipairs(names) do _G["timing_" .. name] = {} end
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  local header = headers["Server-Timing"] or headers["server-timing"]
  if header == nil then return end
  for _, name in ipairs(names) do
    local dur = header:match(name .. ";dur=([%d%.]+)")
    if dur then
      local list = _G["timing_" .. name]
      list[#list + 1] = tonumber(dur)
    end
  end
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.floor(#sorted * p))]
end

function done(summary, latency, requests)
  for _, name in ipairs(names) do
    local all = {}
    for _, thread in ipairs(threads) do
      for _, v in ipairs(thread:get("timing_" .. name)) do all[#all + 1] = v end
    end
    table.sort(all)
    print(string.format("server-timing %-16s n=%d p50=%.2f p99=%.2f", name, #all, percentile(all, 0.5), percentile(all, 0.99)))
  end
end
