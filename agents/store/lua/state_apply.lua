-- Apply a batch of signal messages to per-student state, atomically with the applied offsets.
--
-- KEYS[1]   applied offsets hash of the consumer group (partition → offset)
-- KEYS[2]   watermarks hash of the consumer group (partition → ms)
-- KEYS[3]   the group's earliest day with data
-- KEYS[4..] every student-state, seen (two per student), activity and members key the
--           signals touch
-- ARGV[1]   dedup TTL, seconds: also the length of one de-duplication generation
-- ARGV[2]   per-student state TTL, seconds
-- ARGV[3]   source-activity TTL, seconds
-- ARGV[4]   grace, ms: an event older than its partition's watermark minus this is too late
--           to count
-- ARGV[5]   the number of registered source kinds, S
-- ARGV[6..] the S source kind names (each student's last-seen time per source is read once)
-- then      the key map (JSON): where each signal finds its keys, as indexes into KEYS:
--           state[pseudonym], seen[pseudonym] (its two generation keys are that index and
--           the next), activity[source][day], members[partition]; and whole_feed, the sources
--           counted as one location
-- then      triples: partition, offset, payload (a SignalBatch as JSON)
--
-- A message whose offset is at or below the partition's applied offset is skipped: it was
-- applied before a crash or rebalance and is being delivered again. A partition's watermark is
-- the highest watermark the ingest has stamped on its batches (the ingest holds it back for
-- feeds with a backlog, so a fast feed never makes a slow one's events look late; and it ticks
-- partitions whose students are all silent). Also counts activity per source, location and
-- local hour (source health).
--
-- De-duplication is by feed and event id, whatever the event's time: each student's seen hash
-- maps feed:event-id to what the event says: its kind and context, or for an attendance mark
-- its module and session, and its status (each text hashed when long). The same id again
-- saying the same is a duplicate; saying something else, it is refused as a conflict, except
-- an attendance mark that changes only its status, which is a correction. Ids are kept in two
-- generations of ARGV[1] of event time each (by the partition's watermark): the current one and
-- the one before, so an id is remembered for one to two generations; the state's 'sg' field
-- says which generation each of the student's two seen keys holds.
--
-- Attendance marks are kept per student and session (field 'm:' .. session id, hashed when long,
-- in the seen hash), as time:day:status of the latest mark made on each day; the session counts
-- on the day of its earliest mark, with the status of the latest: a correction replaces the
-- earlier mark, it never adds one. A correction made on a later day than the session's is
-- effective from its own day: it is kept apart in the student's 'ac' field as
-- session-day:effective-day:p,l,a,e changes, so a decision about any day reads the marks as they
-- were known on that day, live and in a replay alike.
--
-- Returns {applied, duplicates, skipped_messages, wms, refused, corrections}: wms is a flat list
-- of partition, watermark-ms; refused a flat list of event id, source, lateness-ms, partition,
-- offset, reason (too_late, correction_too_late, duplicate_conflict); corrections the number of
-- marks that replaced an earlier one.
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
local generation_ms = dedup_ttl * 1000

-- Status → position in the day's present,late,absent,excused counts; withdrawn counts nowhere.
local status_slot = {present = 1, late = 2, absent = 3, excused = 4, withdrawn = 0}
local applied, duplicates, skipped, corrections = 0, 0, 0, 0
local refused = {}
local watermarks = {}
local last_offset = {}
local activity = {}
local first_day = nil
-- Each student touched by the batch is read once, updated in this table, and written once at
-- the end: many events of one student in a batch cost one read and one write, not one each.
local students = {}
local seen_of = {}

local function student(who, sk, mk)
  local st = students[who]
  if st == nil then
    local v = redis.call('HMGET', sk, 'first', 'sg', unpack(last_seen_fields))
    st = {
      sk = sk, mk = mk, first = tonumber(v[1]) or -1, new = v[1] == false,
      ls = {}, dirty = {}, incr = {}, att = {}, ac = nil, sg = {},
    }
    for n = 1, source_count do st.ls[ARGV[5 + n]] = tonumber(v[n + 2]) or -1 end
    if v[2] then
      local g0, g1 = string.match(v[2], '^(-?%d*),(-?%d*)$')
      st.sg = {tonumber(g0), tonumber(g1)}
    end
    students[who] = st
  end
  return st
end

-- The student's two seen generations: the current one (by the partition's watermark when the
-- batch first meets the student; never before a generation already written) and the one
-- before. Which generation each slot holds is the state's 'sg' field; a slot holding an older
-- one is stale and is emptied before it is reused.
local function seen(who, clock, st)
  local dd = seen_of[who]
  if dd == nil then
    local index = key_map['seen'][who]
    local slots = {KEYS[index], KEYS[index + 1]}
    local gens = st.sg
    local generation = math.floor(clock / generation_ms)
    for n = 1, 2 do
      if gens[n] ~= nil and gens[n] > generation then generation = gens[n] end
    end
    local c = generation % 2 + 1
    local o = 3 - c
    dd = {
      st = st, slot = c, cur = slots[c], old = slots[o], generation = generation,
      cur_valid = gens[c] == generation, cur_stale = gens[c] ~= nil and gens[c] ~= generation,
      old_valid = gens[o] == generation - 1, touched = false,
    }
    seen_of[who] = dd
  end
  return dd
end

local function recall(dd, field)
  if dd.cur_valid then
    local v = redis.call('HGET', dd.cur, field)
    if v then return v end
  end
  if dd.old_valid then
    local v = redis.call('HGET', dd.old, field)
    if v then return v end
  end
  return nil
end

local function prepare(dd)
  if not dd.cur_valid then
    if dd.cur_stale then redis.call('DEL', dd.cur) end
    dd.st.sg[dd.slot] = dd.generation
    dd.st.dirty['sg'] = true
    dd.cur_valid, dd.cur_stale = true, false
  end
end

local function remember(dd, field, value)
  prepare(dd)
  redis.call('HSET', dd.cur, field, value)
  dd.touched = true
end

-- One session's marks, one per day in day order: {t, e, s} is the latest mark made on day e
-- (its time, day and status slot). Only the status at the end of each day counts, so an
-- earlier mark of the same day needs no keeping. The first day is the day the session counts on.
local function read_marks(text)
  local marks = {}
  for t, e, s in string.gmatch(text, '(-?%d+):(-?%d+):(%d)') do
    marks[#marks + 1] = {tonumber(t), tonumber(e), tonumber(s)}
  end
  return marks
end

local function write_marks(marks)
  local parts = {}
  for n, m in ipairs(marks) do parts[n] = string.format('%d:%d:%d', m[1], m[2], m[3]) end
  return table.concat(parts, ';')
end

-- What a session's marks add to the counts: 'a:' .. day for the status at the end of the day it
-- counts on, and day:effective-day for each later day's change of status.
local function mark_cells(marks)
  local out = {}
  local first = marks[1][2]
  local before = 0
  for i, m in ipairs(marks) do
    local counts = {0, 0, 0, 0}
    if i == 1 then out['a:' .. first] = counts else out[first .. ':' .. m[2]] = counts end
    if before > 0 then counts[before] = counts[before] - 1 end
    if m[3] > 0 then counts[m[3]] = counts[m[3]] + 1 end
    before = m[3]
  end
  return out
end

-- The marks with a new one (time t, day e, status s); nil when it changes nothing: a mark of a
-- day that already has a later one, or the same mark again. At equal times the later arrival
-- wins.
local function with_mark(marks, t, e, s)
  local out = {}
  local placed = false
  for _, m in ipairs(marks or {}) do
    if m[2] == e then
      if t < m[1] or (t == m[1] and s == m[3]) then return nil end
      out[#out + 1] = {t, e, s}
      placed = true
    else
      if not placed and m[2] > e then
        out[#out + 1] = {t, e, s}
        placed = true
      end
      out[#out + 1] = m
    end
  end
  if not placed then out[#out + 1] = {t, e, s} end
  return out
end

local function day_counts(st, day)
  local counts = st.att[day]
  if counts == nil then
    counts = {0, 0, 0, 0}
    local current = redis.call('HGET', st.sk, 'a:' .. day)
    if current then
      local n = 1
      for v in string.gmatch(current, '-?%d+') do
        counts[n] = tonumber(v)
        n = n + 1
      end
    end
    st.att[day] = counts
  end
  return counts
end

local function corrections_of(st)
  if st.ac == nil then
    st.ac = {}
    local text = redis.call('HGET', st.sk, 'ac')
    if text then
      for cell, values in string.gmatch(text, '([^;=]+)=([^;]+)') do
        local counts = {}
        for v in string.gmatch(values, '-?%d+') do table.insert(counts, tonumber(v)) end
        st.ac[cell] = counts
      end
    end
  end
  return st.ac
end

-- The counts of one correction cell ('session-day:effective-day'), empty when new.
local function correction_counts(st, cell)
  local ac = corrections_of(st)
  local target = ac[cell]
  if target == nil then
    target = {0, 0, 0, 0}
    ac[cell] = target
  end
  return target
end

local function add_cells(st, cells, sign)
  for cell, counts in pairs(cells) do
    local target
    if string.sub(cell, 1, 2) == 'a:' then
      target = day_counts(st, tonumber(string.sub(cell, 3)))
    else
      target = correction_counts(st, cell)
    end
    for n = 1, 4 do target[n] = target[n] + sign * counts[n] end
  end
end

-- Count a change of status of a session that counts on day ``first``, as known from day ``e``:
-- on ``first`` itself it changes that day's counts, from a later day the corrections kept apart.
local function bump(st, first, e, slot, delta)
  if st == nil or slot == 0 then return end
  local target
  if e == first then
    target = day_counts(st, first)
  else
    target = correction_counts(st, first .. ':' .. e)
  end
  target[slot] = target[slot] + delta
end

-- Add a mark (time t, day e, status s) to a session's marks (their text, or nil for none) and
-- count what it changes (nothing when st is nil); returns the new text, or nil when the mark
-- changes nothing. A mark for the session's latest day or a later one, as marks usually come,
-- touches only the text's first and last entries; an earlier day's recounts the session.
local function add_mark(st, text, t, e, s)
  local entry = string.format('%d:%d:%d', t, e, s)
  if text == nil then
    bump(st, e, e, s, 1)
    return entry
  end
  local cut = string.match(text, '.*;()') or 1  -- where the last entry starts
  local head = string.sub(text, 1, cut - 1)
  local lt, le, ls = string.match(text, '^(-?%d+):(-?%d+):(%d)$', cut)
  lt, le, ls = tonumber(lt), tonumber(le), tonumber(ls)
  local first = tonumber(string.match(text, '^-?%d+:(-?%d+)'))
  if e >= le then
    if e == le and (t < lt or (t == lt and s == ls)) then return nil end
    if s ~= ls then
      bump(st, first, e, ls, -1)
      bump(st, first, e, s, 1)
    end
    if e == le then return head .. entry end
    return text .. ';' .. entry
  end
  local marks = read_marks(text)
  local next_marks = with_mark(marks, t, e, s)
  if next_marks == nil then return nil end
  if st ~= nil then
    add_cells(st, mark_cells(marks), -1)
    add_cells(st, mark_cells(next_marks), 1)
  end
  return write_marks(next_marks)
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

-- A text as it is when short (most event ids, a VLE action and course), else the first
-- ``size`` hex digits of its SHA-1 (never equal to a short text, which has a ':' or a newline).
local function compact(text, limit, size)
  if #text <= limit then return text end
  return string.sub(redis.sha1hex(text), 1, size)
end

local function refuse(s, src, lateness, partition, offset, reason)
  for _, v in ipairs({s['event_id'], src, lateness, partition, offset, reason}) do
    table.insert(refused, v)
  end
end

local function apply_signal(s, partition, offset, wm)
  local who = s['pseudonym']
  local day = s['day']
  local src = s['source']
  local ts = s['occurred_at_ms']
  local kind, context = s['kind'], s['context']
  local session = s['session']
  local marked = src == 'attendance' and type(session) == 'string' and session ~= ''
  local clock = wm
  if clock <= 0 then clock = ts end  -- no watermark yet: the event's own time
  local st = student(who, KEYS[key_map['state'][who]], KEYS[key_map['members'][partition]])
  local dd = seen(who, clock, st)
  local id_field = compact(src .. ':' .. s['event_id'], 40, 16)
  local digest, slot, mark_field
  if marked then
    slot = status_slot[kind] or 0
    digest = compact(context .. '\n' .. session, 40, 12) .. '\t' .. slot
    mark_field = 'm:' .. compact(session, 40, 16)
  else
    digest = compact(kind .. '\n' .. context, 24, 12)
  end
  local known, fresh
  if marked or ts < wm - grace_ms then
    known = recall(dd, id_field)
  else
    -- The common case, an event not seen before, costs one call: HSETNX in the current
    -- generation (after a look in the previous one, while there is one).
    if dd.old_valid then known = redis.call('HGET', dd.old, id_field) or nil end
    if known == nil then
      prepare(dd)
      if redis.call('HSETNX', dd.cur, id_field, digest) == 1 then
        dd.touched, fresh = true, true
      else
        known = redis.call('HGET', dd.cur, id_field) or nil
      end
    end
  end
  local restatus = false
  if known ~= nil then
    if known == digest then
      duplicates = duplicates + 1
      return
    end
    if not (marked and string.sub(known, 1, -2) == string.sub(digest, 1, -2)) then
      refuse(s, src, 0, partition, offset, 'duplicate_conflict')
      return
    end
    restatus = true  -- the same mark again with another status: a correction
  end
  local marks
  if marked then marks = recall(dd, mark_field) end
  if ts < wm - grace_ms then
    -- More than the grace period behind its partition: not counted, reported instead.
    local reason = 'too_late'
    if marks ~= nil or restatus then
      if add_mark(nil, marks, ts, day, slot) == nil then
        duplicates = duplicates + 1  -- this mark is there already, under another event id
        return
      end
      reason = 'correction_too_late'
    end
    refuse(s, src, wm - ts, partition, offset, reason)
    return
  end
  if marked then
    local next_marks = add_mark(st, marks, ts, day, slot)
    if next_marks == nil then
      duplicates = duplicates + 1  -- this mark is there already, under another event id
      return
    end
    remember(dd, mark_field, next_marks)
    if marks ~= nil then corrections = corrections + 1 end
  elseif src == 'attendance' then
    local counts = day_counts(st, day)  -- a mark without a session: counted as it comes
    local n = status_slot[kind] or 0
    if n > 0 then counts[n] = counts[n] + 1 end
  end
  if not fresh then remember(dd, id_field, digest) end
  applied = applied + 1
  st.applied = true
  if first_day == nil or day < first_day then first_day = day end
  local field = 'd:' .. day .. ':' .. src
  st.incr[field] = (st.incr[field] or 0) + 1
  count_activity(KEYS[key_map['activity'][src][string.format('%d', day)]], s, src)
  if st.first < 0 or ts < st.first then
    st.first = ts
    st.dirty['first'] = true
  end
  if ts > (st.ls[src] or -1) then
    st.ls[src] = ts
    st.dirty['ls:' .. src] = true
  end
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
      apply_signal(s, partition, offset, wm)
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
  if st.ac ~= nil then
    local parts = {}
    for cell, counts in pairs(st.ac) do
      if counts[1] ~= 0 or counts[2] ~= 0 or counts[3] ~= 0 or counts[4] ~= 0 then
        table.insert(parts, cell .. '=' .. table.concat(counts, ','))
      end
    end
    table.sort(parts)
    if #parts > 0 then
      redis.call('HSET', st.sk, 'ac', table.concat(parts, ';'))
    else
      redis.call('HDEL', st.sk, 'ac')
    end
  end
  for field, _ in pairs(st.dirty) do
    if field == 'sg' then
      local g0, g1 = st.sg[1], st.sg[2]
      redis.call('HSET', st.sk, 'sg', (g0 and string.format('%d', g0) or '') .. ',' ..
        (g1 and string.format('%d', g1) or ''))
    else
      local value = st.first
      if field ~= 'first' then value = st.ls[string.sub(field, 4)] end
      redis.call('HSET', st.sk, field, string.format('%d', value))
    end
  end
  if st.new and st.applied then
    redis.call('SADD', st.mk, who)
  end
  if st.applied then redis.call('EXPIRE', st.sk, state_ttl) end
end
for _, dd in pairs(seen_of) do
  if dd.touched then redis.call('EXPIRE', dd.cur, dedup_ttl) end
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
return {applied, duplicates, skipped, wms, refused, corrections}
