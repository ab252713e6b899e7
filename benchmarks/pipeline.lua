-- benchmarks/pipeline.lua: a wrk script that pipelines, as TechEmpower's plaintext test does:
-- each write carries N requests for the URL's path (N = the first script argument, default 16),
-- and wrk counts N responses for it before it writes again.
--
-- usage: wrk -t1 -c256 -d2s -s benchmarks/pipeline.lua http://127.0.0.1:PORT/plaintext -- 16

local depth = 16
local batch

function init(args)
    depth = tonumber(args[1]) or depth
    local reqs = {}
    for i = 1, depth do
        reqs[i] = wrk.format()
    end
    batch = table.concat(reqs)
end

function request()
    return batch
end
