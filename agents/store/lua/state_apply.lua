-- Apply a batch of signal messages to per-student state, atomically with the applied offsets.
--
-- KEYS[1]   applied offsets hash of the consumer group (partition → offset)
-- KEYS[2]   watermarks hash of the consumer group (partition → ms)
-- KEYS[3]   the group's earliest day with data
-- KEYS[4..] every student-state, seen-set, activity and members key the signals touch
-- ARGV[1]   dedup key TTL, seconds
-- ARGV[2]   per-student state TTL, seconds
-- ARGV[3]   source-activity TTL, seconds
-- ARGV[4]   grace, ms: an event older than its partition's watermark minus this is too late
--           to count
-- ARGV[5]   the number of registered source kinds, S
-- ARGV[6..] the S source kind names (each student's last-seen time per source is read once)
-- then      the key map (JSON): where each signal finds its keys, as indexes into KEYS:
--           state[pseudonym], seen[pseudonym][day], activity[source][day],
--           members[partition]; and whole_feed, the sources counted as one location
-- then      triples: partition, offset, payload (a SignalBatch as JSON)
--
-- A message whose offset is at or below the partition's applied offset is skipped: it was
-- applied before a crash or rebalance and is being delivered again. Event ids are
-- de-duplicated per student and day. A partition's watermark is the highest watermark the
-- ingest has stamped on its batches (the ingest holds it back for feeds with a backlog, so a
-- fast feed never makes a slow one's events look late; and it ticks partitions whose students
-- are all silent). Also counts activity per source, location and local hour (source health).
--
-- Returns {applied, duplicates, skipped_messages, wms, late}: wms is a flat list of partition,
-- watermark-ms; late a flat list of event id, source, lateness-ms, partition, offset.
local dedup_ttl = tonumber(ARGV[1])
local state_ttl = tonumber(ARGV[2])
local activity_ttl = tonumber(ARGV[3])
local grace_ms = tonumber(ARGV[4])
local source_count = tonumber(ARGV[5])
local last_seen_fields = {}
for n = 1, source_count do last_seen_fields[n] = 'ls:' .. ARGV[5 + n] end
local key_map = cjson.decode(ARGV[6 + source_count])
local whole_feed = {}
for _, name in ipairs(key_map['whole_feed']) do whole_feed[name] = true end

local offsets_key = KEYS[1]
local wm_key = KEYS[2]
local first_key = KEYS[3]

local status_slot = {present = 1, late = 2, absent = 3, excused = 4}
local applied, duplicates, skipped = 0, 0, 0
local late = {}
local seen_keys = {}
local watermarks = {}
local last_offset = {}
local activity = {}
local first_day = nil
-- Each student touched by the batch is read once, updated in this table, and written once at
-- the end: many events of one student in a batch cost one read and one write, not one each.
local students = {}

local function student(who, sk, mk)
  local st = students[who]
  if st == nil then
    local v = redis.call('HMGET', sk, 'first', unpack(last_seen_fields))
    st = {
      sk = sk, mk = mk, first = tonumber(v[1]) or -1, new = v[1] == false,
      ls = {}, dirty = {}, incr = {}, att = {},
    }
    for n = 1, source_count do st.ls[ARGV[5 + n]] = tonumber(v[n + 1]) or -1 end
    students[who] = st
  end
  return st
end

local function apply_attendance(st, kind, day)
  -- One field per day holds the four mark counts, so a window is one HMGET field a day.
  local slot = status_slot[kind]
  if slot == nil then return end
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

local function count_activity(key, s, src)
  local location = s['context']
  if whole_feed[src] then location = 'all' end
  local hour = s['hour']
  if type(hour) ~= 'number' then hour = 0 end
  local field = location .. '|' .. string.format('%d', hour)
  local per_key = activity[key]
  if per_key == nil then
    per_key = {}
    activity[key] = per_key
  end
  per_key[field] = (per_key[field] or 0) + 1
end

local function apply_signal(s, partition, offset, wm)
  local who = s['pseudonym']
  local day = s['day']
  local src = s['source']
  local day_label = string.format('%d', day)
  -- Event ids are remembered in one set per student and day: adding to a set is cheaper
  -- than one expiring key per event, and the set expires as a whole.
  local dk = KEYS[key_map['seen'][who][day_label]]
  local ts = s['occurred_at_ms']
  if ts < wm - grace_ms then
    -- More than the grace period behind its partition: not counted, reported instead.
    if redis.call('SISMEMBER', dk, s['event_id']) == 1 then
      duplicates = duplicates + 1
    else
      for _, v in ipairs({s['event_id'], src, wm - ts, partition, offset}) do
        table.insert(late, v)
      end
    end
    return wm
  end
  if redis.call('SADD', dk, s['event_id']) == 0 then
    duplicates = duplicates + 1
    return wm
  end
  if not seen_keys[dk] then
    seen_keys[dk] = true
    redis.call('EXPIRE', dk, dedup_ttl)
  end
  applied = applied + 1
  if first_day == nil or day < first_day then first_day = day end
  local st = student(who, KEYS[key_map['state'][who]], KEYS[key_map['members'][partition]])
  local field = 'd:' .. day .. ':' .. src
  st.incr[field] = (st.incr[field] or 0) + 1
  if src == 'attendance' then apply_attendance(st, s['kind'], day) end
  count_activity(KEYS[key_map['activity'][src][day_label]], s, src)
  if st.first < 0 or ts < st.first then
    st.first = ts
    st.dirty['first'] = true
  end
  if ts > (st.ls[src] or -1) then
    st.ls[src] = ts
    st.dirty['ls:' .. src] = true
  end
  return wm
end

for i = 7 + source_count, #ARGV, 3 do
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
    local wm = watermarks[partition]
    if wm == nil then
      wm = tonumber(redis.call('HGET', wm_key, partition) or '0')
    end
    for _, s in ipairs(batch['signals']) do
      wm = apply_signal(s, partition, offset, wm)
    end
    -- The stamp covers this message's own signals, so it applies from the next message on: a
    -- batch that spans days (a backlog, a replay chunk) is judged against what came before it.
    local tick = batch['watermark_ms']
    if type(tick) == 'number' and tick > wm then wm = tick end
    watermarks[partition] = wm
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
  if st.new then
    redis.call('SADD', st.mk, who)
  end
  redis.call('EXPIRE', st.sk, state_ttl)
end

for key, fields in pairs(activity) do
  for field, n in pairs(fields) do
    redis.call('HINCRBY', key, field, n)
  end
  redis.call('EXPIRE', key, activity_ttl)
end

if first_day ~= nil then
  local known = tonumber(redis.call('GET', first_key) or '')
  if known == nil or first_day < known then
    redis.call('SET', first_key, string.format('%d', first_day))
  end
end

local wms = {}
for partition, wm in pairs(watermarks) do
  redis.call('HSET', wm_key, partition, string.format('%d', wm))
  table.insert(wms, partition)
  table.insert(wms, wm)
end
for partition, offset in pairs(last_offset) do
  redis.call('HSET', offsets_key, partition, offset)
end
return {applied, duplicates, skipped, wms, late}
