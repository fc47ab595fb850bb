-- wrk script for bench/scheduling.sh: every request books a distinct free slot.
-- Environment: BOOK_SLOTS (file of "provider_id patient_id start" lines, from
-- bench/seed_appointments.py), BOOK_THREADS (wrk's -t), TOKEN (bearer token).
-- Thread i takes lines i, i+T, i+2T, …; done() prints
--   BOOKINGS created=N conflicts=N other=N exhausted=N seconds=S
local threads = {}
local counter = 0

function setup(thread)
    thread:set("id", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    local stride = tonumber(os.getenv("BOOK_THREADS") or "1")
    slots, pos = {}, 1
    created, conflicts, other, exhausted = 0, 0, 0, 0
    headers = {
        ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
        ["Content-Type"] = "application/json",
    }
    local n = 0
    for line in io.lines(os.getenv("BOOK_SLOTS")) do
        if n % stride == (id or 0) then
            local provider, patient, start = line:match("(%S+) (%S+) (%S+)")
            slots[#slots + 1] = string.format(
                '{"patient_id":"%s","provider_id":"%s","appointment_type":"follow_up","start":"%s"}',
                patient, provider, start)
        end
        n = n + 1
    end
end

function request()
    local body = slots[pos]
    if body then
        pos = pos + 1
    else
        -- Out of free slots: repeat the last one (answers 409) and say so in done().
        exhausted = exhausted + 1
        body = slots[#slots]
    end
    return wrk.format("POST", "/api/v1/appointments", headers, body)
end

function response(status, hdrs, body)
    if status == 201 then
        created = created + 1
    elseif status == 409 then
        conflicts = conflicts + 1
    else
        other = other + 1
        if other <= 3 then io.stderr:write("booking answered " .. status .. ": " .. body .. "\n") end
    end
end

function done(summary, latency, requests)
    local c, k, o, x = 0, 0, 0, 0
    for _, t in ipairs(threads) do
        c = c + t:get("created")
        k = k + t:get("conflicts")
        o = o + t:get("other")
        x = x + t:get("exhausted")
    end
    io.write(string.format("BOOKINGS created=%d conflicts=%d other=%d exhausted=%d seconds=%.3f\n",
        c, k, o, x, summary.duration / 1e6))
end
