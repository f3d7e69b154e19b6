-- Apply a batch of signal messages to per-student state, atomically with the applied offsets.
--
-- ARGV[1]  key prefix (namespace), e.g. "es"
-- ARGV[2]  consumer group name (offsets and watermarks are kept per group and topic)
-- ARGV[3]  dedup key TTL, seconds
-- ARGV[4]  per-student state TTL, seconds
-- ARGV[5]  VLE absence threshold, milliseconds (a gap at least this long is reported)
-- ARGV[6]  grace, milliseconds: how far a raw partition may trail the leader before it no
--          longer holds the watermark back (its later events would be too late anyway)
-- ARGV[7..] triples: partition, offset, payload (a SignalBatch as JSON)
--
-- A message whose offset is at or below the partition's applied offset is skipped: it was
-- applied before a crash or rebalance and is being delivered again. Event ids are
-- de-duplicated per student. An event more than the grace period older than the latest event
-- of its own feed (raw partition) is not applied. Returns {applied, duplicates,
-- skipped_messages, gaps, wms, late} where late is a flat list of event id, source, lateness-ms, partition, offset;
-- gaps is a flat list of pseudonym, partition, previous-last-seen-ms, new-ms and wms a flat
-- list of partition, source, watermark-ms. Watermarks are kept per partition *and source*
-- (and raw partition the signal came from): an absence on one feed is judged against that
-- feed's own, slowest progress, so a feed that is behind never makes its students look absent.
local prefix = ARGV[1]
local group = ARGV[2]
local dedup_ttl = tonumber(ARGV[3])
local state_ttl = tonumber(ARGV[4])
local absence_ms = tonumber(ARGV[5])
local grace_ms = tonumber(ARGV[6])

local offsets_key = prefix .. ':offsets:' .. group
local wm_key = prefix .. ':wm:' .. group

local status_slot = {present = 1, late = 2, absent = 3, excused = 4}
local applied, duplicates, skipped = 0, 0, 0
local gaps = {}
local late = {}
local seen_keys = {}
local watermarks = {}
local last_offset = {}
local pending = {}
-- Each student touched by the batch is read once, updated in this table, and written once at
-- the end: many events of one student in a batch cost one read and one write, not one each.
local students = {}

local function student(who, partition)
  local st = students[who]
  if st == nil then
    local sk = prefix .. ':s:' .. who
    local v = redis.call('HMGET', sk, 'first', 'ls:swipe', 'ls:attendance', 'ls:vle')
    st = {
      sk = sk, partition = partition, first = tonumber(v[1]) or -1,
      ls = {swipe = tonumber(v[2]) or -1, attendance = tonumber(v[3]) or -1,
            vle = tonumber(v[4]) or -1},
      dirty = {}, incr = {}, att = {}, due = nil, due_known = false, due_present = false,
    }
    students[who] = st
  end
  return st
end

local function apply_attendance(st, s, day, pending_key, who)
  -- One field per day holds the four mark counts, so a window is one HMGET field a day.
  local slot = status_slot[s['kind']]
  if slot then
    local counts = st.att[day]
    if counts == nil then
      counts = {0, 0, 0, 0}
      local current = redis.call('HGET', st.sk, 'a:' .. day)
      if current then
        local n = 1
        for v in string.gmatch(current, '%d+') do
          counts[n] = tonumber(v)
          n = n + 1
        end
      end
      st.att[day] = counts
    end
    counts[slot] = counts[slot] + 1
  end
  local pkey = pending_key .. '|' .. who
  local p = pending[pkey]
  if p == nil then
    local stored = redis.call('HGET', pending_key, who)
    if stored then
      local lo, hi = string.match(stored, '^(%-?%d+):(%-?%d+)')
      p = {tonumber(lo), tonumber(hi), pending_key, who}
    else
      p = {day, day, pending_key, who}
    end
    pending[pkey] = p
  end
  if day < p[1] then p[1] = day end
  if day > p[2] then p[2] = day end
  local pub = s['published_at_ms']
  if type(pub) == 'number' then p[5] = pub end
end

for i = 7, #ARGV, 3 do
  local partition = ARGV[i]
  local offset = tonumber(ARGV[i + 1])
  local done = last_offset[partition]
  if done == nil then
    done = tonumber(redis.call('HGET', offsets_key, partition) or '-1')
  end
  if offset <= done then
    skipped = skipped + 1
  else
    last_offset[partition] = offset
    local batch = cjson.decode(ARGV[i + 2])
    local due_key = prefix .. ':due:vle:' .. partition
    local pending_key = prefix .. ':pending:att:' .. partition
    for _, s in ipairs(batch['signals']) do
      local who = s['pseudonym']
      -- Event ids are remembered in one set per student and day: adding to a set is cheaper
      -- than one expiring key per event, and the set expires as a whole.
      local dk = prefix .. ':seen:' .. who .. ':' .. string.format('%d', s['day'])
      local eid = s['event_id']
      local ts = s['occurred_at_ms']
      local src = s['source']
      local rp = s['raw_partition']
      if type(rp) ~= 'number' then rp = 0 end
      local wfield = partition .. ':' .. src .. ':' .. string.format('%d', rp)
      local wm = watermarks[wfield]
      if wm == nil then
        wm = tonumber(redis.call('HGET', wm_key, wfield) or '0')
        watermarks[wfield] = wm
      end
      if ts < wm - grace_ms then
        -- Later than the grace period behind its own feed: not counted, reported instead.
        if redis.call('SISMEMBER', dk, eid) == 1 then
          duplicates = duplicates + 1
        else
          table.insert(late, s['event_id'])
          table.insert(late, src)
          table.insert(late, wm - ts)
          table.insert(late, partition)
          table.insert(late, offset)
        end
      elseif redis.call('SADD', dk, eid) == 1 then
        if not seen_keys[dk] then
          seen_keys[dk] = true
          redis.call('EXPIRE', dk, dedup_ttl)
        end
        applied = applied + 1
        local st = student(who, partition)
        local day = s['day']
        if ts > wm then watermarks[wfield] = ts end
        local field = 'd:' .. day .. ':' .. src
        st.incr[field] = (st.incr[field] or 0) + 1
        if src == 'attendance' then
          apply_attendance(st, s, day, pending_key, who)
        end
        local first = st.first
        if first < 0 or ts < first then
          st.first = ts
          st.dirty['first'] = true
        end
        local last = st.ls[src] or -1
        if ts > last then
          st.ls[src] = ts
          st.dirty['ls:' .. src] = true
        end
        if src == 'vle' then
          local last_vle = last
          if last_vle < 0 then last_vle = first end
          if ts > last_vle then
            -- The student is active on the VLE again. If the absence before this event was long
            -- enough and no nudge has been sent for it yet (still due), report the gap.
            if last_vle >= 0 and ts - last_vle >= absence_ms then
              if not st.due_known then
                st.due_present = redis.call('ZSCORE', due_key, who) ~= false
                st.due_known = true
              end
              if st.due_present then
                table.insert(gaps, who)
                table.insert(gaps, partition)
                table.insert(gaps, last_vle)
                table.insert(gaps, ts)
              end
            end
            st.due, st.due_known, st.due_present = ts, true, true
          end
        elseif first < 0 and last < 0 and st.ls['vle'] < 0 then
          -- First sight of this student, and not on the VLE: the absence clock starts now.
          st.due, st.due_known, st.due_present = ts, true, true
        end
      else
        duplicates = duplicates + 1
      end
    end
  end
end

for who, st in pairs(students) do
  for field, n in pairs(st.incr) do
    redis.call('HINCRBY', st.sk, field, n)
  end
  for day, counts in pairs(st.att) do
    redis.call('HSET', st.sk, 'a:' .. day, table.concat(counts, ','))
  end
  for field, _ in pairs(st.dirty) do
    local value = st.first
    if field ~= 'first' then value = st.ls[string.sub(field, 4)] end
    redis.call('HSET', st.sk, field, string.format('%d', value))
  end
  if st.due then
    redis.call('ZADD', prefix .. ':due:vle:' .. st.partition, st.due, who)
  end
  redis.call('EXPIRE', st.sk, state_ttl)
end

for _, p in pairs(pending) do
  local pub = ''
  if p[5] then pub = string.format('%d', p[5]) end
  redis.call('HSET', p[3], p[4], string.format('%d:%d:', p[1], p[2]) .. pub)
end
-- The watermark of a (signals partition, source) is the lowest of the per-raw-partition
-- maxima: a raw partition that is behind holds it back, so its students are not judged on
-- time that only the other raw partitions have reached.
local changed = {}
for wfield, wm in pairs(watermarks) do
  redis.call('HSET', wm_key, wfield, wm)
  local partition, src = string.match(wfield, '^(%d+):(%a+):')
  changed[partition .. ':' .. src] = true
end
local lowest, highest = {}, {}
if next(changed) then
  local all = redis.call('HGETALL', wm_key)
  for i = 1, #all, 2 do
    local partition, src = string.match(all[i], '^(%d+):(%a+):')
    local key = partition and (partition .. ':' .. src)
    if key and changed[key] then
      local wm = tonumber(all[i + 1])
      if lowest[key] == nil or wm < lowest[key] then lowest[key] = wm end
      if highest[key] == nil or wm > highest[key] then highest[key] = wm end
    end
  end
end
local wms = {}
for key, low in pairs(lowest) do
  local wm = math.max(low, highest[key] - grace_ms)
  local partition, src = string.match(key, '^(%d+):(%a+)$')
  table.insert(wms, partition)
  table.insert(wms, src)
  table.insert(wms, wm)
end
for partition, offset in pairs(last_offset) do
  redis.call('HSET', offsets_key, partition, offset)
end
return {applied, duplicates, skipped, gaps, wms, late}
