//! The agent's durable outbox: every sample is appended here before it is sent and removed only
//! when the server acknowledges it, so no sample is lost to a server outage or an agent restart
//! (`kill -9` included).
//!
//! # File format
//!
//! One append-only file, `<state_dir>/spool.log`:
//!
//! ```text
//! magic   b"PMSPOOL\x01"                       8 bytes, once
//! record  u32 LE body length | u32 LE CRC-32 (IEEE) of the body | body
//! body    u8 kind, then
//!           1 Entry        u64 seq, u8 event length, event bytes, payload bytes (rest of body)
//!           2 Ack          u64 seq
//!           3 DropThrough  u64 seq   (the oldest pending entries up to seq were dropped: spool full)
//!           4 Meta         u64 next_seq, u64 dropped_total (first record of every new file)
//! ```
//!
//! All integers are little-endian. Entry seqs are strictly increasing within a file, and the Meta
//! record carries the next seq across compaction, so seqs never repeat across restarts.
//!
//! # Durability
//!
//! `append` and drops are written and then `sync_data`-ed before the call returns, so a crash
//! (power loss or `kill -9`) loses nothing that `append` returned a seq for.
//!
//! `append_unsynced` writes without the sync, for the agent's normal case: the sample is sent
//! at once and normally acknowledged within milliseconds, and a sample the server has stored
//! needs no copy on the node's disk. The caller must `sync` when the sample is not acknowledged
//! soon (the agent: when the link is not up, or after `run::SYNC_GRACE`; `needs_sync` tells).
//! So a power loss can lose only a sample collected in the last moments that the server has not
//! stored either. A process crash or `kill -9` loses nothing: written data is in the kernel's
//! page cache, and an opened spool counts its pending entries as unsynced until `sync`.
//!
//! An `ack` is written without a sync too: the next sync carries it to disk. A power loss can
//! therefore lose recent acknowledgements, and those samples are sent a second time after the
//! restart (delivery is at-least-once; the server keys points by series and second, so a repeat
//! changes nothing).
//!
//! On open the log is replayed. A torn tail (a record cut short, or zeros after the last record)
//! is truncated with a warning giving the bytes discarded. A bad record (a wrong checksum, a
//! length that cannot be, a body that does not parse) is damage: replay resynchronises on the
//! next whole record after it (its length fits, its checksum matches, its body parses, an
//! entry's seq is above the last one read) and goes on from there, so one damaged record costs
//! only itself; the file is then renamed aside as `spool.log.corrupt-<unix time>` for
//! inspection, what was read is rewritten into a fresh `spool.log`, and the next seq skips past
//! any the damaged bytes could have held. With no whole record after the damage (or a "torn"
//! tail over 1 MiB), everything from the damage on is dropped the same way. A file without the
//! magic is renamed aside the same way and a fresh, empty spool started (its seqs restart at
//! 1). Opening never panics and never refuses to start the agent because of what the file
//! holds; only I/O errors fail it.
//!
//! Creating the file and replacing it by compaction are made durable with `sync_all` on the file
//! and an fsync of the directory.
//!
//! # Bounds and memory
//!
//! Memory holds only an index of `(seq, offset, length)` per pending entry (24 bytes each);
//! payloads stay on disk and `read` fetches one at a time. The pending entries are bounded by
//! `max_entries` and by `max_bytes` (their on-disk size, framing included); when an append would
//! exceed either, the oldest entries are dropped first and a warning says how many. Acked and
//! dropped entries become dead bytes; when those exceed both the live bytes and 1 MiB the live
//! records are rewritten into a new file (temp file, fsync, rename), so the file stays under about
//! twice `max_bytes` plus 1 MiB.
//!
//! A write error (full disk, ...) fails `append` with the path; the spool is unchanged. The caller
//! logs it and `hold`s the sample in memory instead: held samples are pending like the others
//! (same seqs, sent and acknowledged the same way) but are lost with the process. At most
//! `MAX_HELD` samples and `MAX_HELD_BYTES` are held; past that the oldest held one is dropped.
//!
//! One process owns a spool directory; nothing here locks it against a second agent.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The spool file's name inside the state directory.
pub const FILE_NAME: &str = "spool.log";

/// How many pending samples and how many bytes of them the spool keeps before dropping the oldest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Pending entries kept at most; at least 1.
    pub max_entries: usize,
    /// On-disk bytes of the pending entries (framing included) kept at most.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    /// 10 000 entries (24 h of 30 s fast samples is 2880, leaving room for medium and slow ones)
    /// and 64 MiB.
    fn default() -> SpoolConfig {
        SpoolConfig {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// One spooled sample, as read back from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// The channel event, e.g. `metric:fast`.
    pub event: String,
    /// The JSON text of the push payload.
    pub payload: String,
}

/// The durable outbox; see the module documentation.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    path: PathBuf,
    config: SpoolConfig,
    file: File,
    /// Bytes of the file that hold valid records; writes go here.
    file_len: u64,
    /// Pending entries, oldest (lowest seq) first.
    index: VecDeque<Slot>,
    /// Sum of `Slot::len` over `index`.
    live_bytes: u64,
    next_seq: u64,
    dropped_total: u64,
    /// Dead bytes needed before compaction is tried again after a failed attempt.
    compact_retry_at: u64,
    /// Entries up to this seq are known to be on disk (synced).
    synced_through: u64,
    /// Samples that could not be written (full disk), kept in memory; oldest first.
    held: VecDeque<Entry>,
    held_bytes: usize,
}

/// Most samples held in memory while the spool cannot be written.
pub const MAX_HELD: usize = 1000;
/// Most payload bytes held in memory.
pub const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;

/// Whether a write must be on disk before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flush {
    Now,
    /// With the next synced write.
    Later,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, creating `dir` with mode 0700 if needed, and
    /// replays it; see the module documentation for what happens to damaged files.
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<Spool> {
        let path = dir.join(FILE_NAME);
        if config.max_entries == 0 {
            return Err(spool_error(&path, "max_entries must be at least 1"));
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_error(dir, "cannot create the spool directory", &e))?;
        let tmp = dir.join(TMP_NAME);
        if tmp.exists() {
            // A compaction that crashed before its rename; the old file is still whole.
            fs::remove_file(&tmp).map_err(|e| io_error(&tmp, "cannot remove", &e))?;
        }

        let file = open_rw(&path, false)?;
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            path,
            config,
            file,
            file_len: 0,
            index: VecDeque::new(),
            live_bytes: 0,
            next_seq: 1,
            dropped_total: 0,
            compact_retry_at: 0,
            synced_through: 0,
            held: VecDeque::new(),
            held_bytes: 0,
        };
        spool.load()?;
        spool.enforce_bounds()?;
        spool.maybe_compact();
        Ok(spool)
    }

    /// Appends one sample and makes it durable; returns its seq. Drops the oldest pending
    /// entries first if the spool would otherwise exceed its bounds. A payload that alone exceeds
    /// `max_bytes` is refused.
    ///
    /// On an error (full disk, ...) nothing was added and nothing dropped; the caller logs it and
    /// still sends the sample live, unspooled.
    pub fn append(&mut self, event: &str, payload: &str) -> Result<u64> {
        self.append_flushed(event, payload, Flush::Now)
    }

    /// Like `append`, without making it durable yet: see "Durability" above. The caller must
    /// `sync` unless the sample is acknowledged soon.
    pub fn append_unsynced(&mut self, event: &str, payload: &str) -> Result<u64> {
        self.append_flushed(event, payload, Flush::Later)
    }

    /// Whether a pending entry is not known to be on disk yet.
    pub fn needs_sync(&self) -> bool {
        self.index
            .back()
            .is_some_and(|slot| slot.seq > self.synced_through)
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| io_error(&self.path, "cannot sync", &e))?;
        self.synced_through = self.next_seq.saturating_sub(1);
        Ok(())
    }

    fn append_flushed(&mut self, event: &str, payload: &str, flush: Flush) -> Result<u64> {
        if event.len() > MAX_EVENT_LEN {
            return Err(spool_error(
                &self.path,
                format!("event name of {} bytes is too long", event.len()),
            ));
        }
        let size = Spool::entry_size(event, payload);
        if size > self.config.max_bytes || size - HEADER_LEN > MAX_BODY_LEN {
            return Err(spool_error(
                &self.path,
                format!(
                    "a {}-byte {event} sample does not fit in a spool of {} bytes",
                    payload.len(),
                    self.config.max_bytes
                ),
            ));
        }
        let seq = self.next_seq;
        let (dropped, dropped_bytes) = self.to_drop(1, size);

        let mut head = Vec::with_capacity(64);
        if let Some(last) = dropped.checked_sub(1).and_then(|i| self.index.get(i)) {
            push_record(&mut head, &small_body(KIND_DROP_THROUGH, last.seq, None));
        }
        let offset = self.file_len + head.len() as u64;
        let mut prefix = Vec::with_capacity(1 + 8 + 1 + event.len());
        prefix.push(KIND_ENTRY);
        prefix.extend_from_slice(&seq.to_le_bytes());
        prefix.push(event.len() as u8); // ≤ MAX_EVENT_LEN, checked above
        prefix.extend_from_slice(event.as_bytes());
        let body_len = prefix.len() + payload.len();
        let crc = crc32_finish(crc32_update(
            crc32_update(CRC_INIT, &prefix),
            payload.as_bytes(),
        ));
        head.extend_from_slice(&(body_len as u32).to_le_bytes()); // ≤ MAX_BODY_LEN, checked above
        head.extend_from_slice(&crc.to_le_bytes());
        head.extend_from_slice(&prefix);
        self.write_records(&[&head, payload.as_bytes()], flush)?;

        if dropped > 0 {
            self.index.drain(..dropped);
            self.live_bytes -= dropped_bytes;
            self.dropped_total += dropped as u64;
            log::warn!(
                "spool full: dropped {dropped} oldest samples (total dropped {})",
                self.dropped_total
            );
        }
        self.index.push_back(Slot {
            seq,
            offset,
            len: size,
        });
        self.live_bytes += size;
        self.next_seq += 1;
        if flush == Flush::Now {
            self.synced_through = seq;
        }
        if dropped > 0 {
            self.maybe_compact();
        }
        Ok(seq)
    }

    /// Marks `seq` as delivered and removes it. Idempotent: an unknown, already acknowledged or
    /// dropped seq is a no-op.
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if let Ok(held) = self.held.binary_search_by_key(&seq, |e| e.seq) {
            if let Some(entry) = self.held.remove(held) {
                self.held_bytes -= entry.payload.len();
            }
            return Ok(());
        }
        let Ok(position) = self.position(seq) else {
            return Ok(());
        };
        let mut record = Vec::with_capacity(HEADER_LEN as usize + 9);
        push_record(&mut record, &small_body(KIND_ACK, seq, None));
        self.write_records(&[&record], Flush::Later)?;
        if let Some(slot) = self.index.remove(position) {
            self.live_bytes -= slot.len;
        }
        self.maybe_compact();
        Ok(())
    }

    /// Keeps a sample that could not be written (see "Bounds and memory"); its seq, or `None`
    /// when even memory cannot take it.
    pub fn hold(&mut self, event: &str, payload: &str) -> Option<u64> {
        if payload.len() > MAX_HELD_BYTES {
            return None;
        }
        while self.held.len() >= MAX_HELD || self.held_bytes + payload.len() > MAX_HELD_BYTES {
            let oldest = self.held.pop_front()?;
            self.held_bytes -= oldest.payload.len();
            self.dropped_total += 1;
            log::warn!(
                "dropped sample {} held in memory: too many held while the spool cannot be \
                 written (total dropped {})",
                oldest.seq,
                self.dropped_total
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.held_bytes += payload.len();
        self.held.push_back(Entry {
            seq,
            event: event.to_owned(),
            payload: payload.to_owned(),
        });
        Some(seq)
    }

    /// The seqs of the pending (unacknowledged) entries, oldest first.
    pub fn pending_seqs(&self) -> impl Iterator<Item = u64> + '_ {
        let mut on_disk = self.index.iter().map(|slot| slot.seq).peekable();
        let mut held = self.held.iter().map(|entry| entry.seq).peekable();
        std::iter::from_fn(move || match (on_disk.peek(), held.peek()) {
            (Some(a), Some(b)) if b < a => held.next(),
            (Some(_), _) => on_disk.next(),
            (None, _) => held.next(),
        })
    }

    /// Reads a pending entry back from disk. Fails if `seq` is not pending, or if the record no
    /// longer matches its checksum (the disk changed under us); the caller should then `ack` the
    /// seq to discard it rather than retry forever.
    pub fn read(&self, seq: u64) -> Result<Entry> {
        if let Ok(held) = self.held.binary_search_by_key(&seq, |e| e.seq) {
            if let Some(entry) = self.held.get(held) {
                return Ok(entry.clone());
            }
        }
        let slot = self
            .position(seq)
            .ok()
            .and_then(|position| self.index.get(position))
            .ok_or_else(|| spool_error(&self.path, format!("no pending sample with seq {seq}")))?;
        let len =
            usize::try_from(slot.len).map_err(|_| spool_error(&self.path, "record too large"))?;
        let mut record = vec![0; len];
        self.file
            .read_exact_at(&mut record, slot.offset)
            .map_err(|e| io_error(&self.path, &format!("cannot read seq {seq}"), &e))?;
        let corrupt = |what: &str| {
            spool_error(
                &self.path,
                format!("record of seq {seq} at offset {} {what}", slot.offset),
            )
        };
        let body = record
            .get(HEADER_LEN as usize..)
            .ok_or_else(|| corrupt("is truncated"))?;
        let crc = u32_at(&record, 4).ok_or_else(|| corrupt("is truncated"))?;
        if u32_at(&record, 0).map(u64::from) != Some(body.len() as u64)
            || crc32_finish(crc32_update(CRC_INIT, body)) != crc
        {
            return Err(corrupt("fails its checksum"));
        }
        let Some(Record::Entry {
            seq: found,
            payload_start,
        }) = parse_body(body)
        else {
            return Err(corrupt("is not an entry"));
        };
        if found != seq {
            return Err(corrupt(&format!("holds seq {found}")));
        }
        let event = body.get(EVENT_START..payload_start).unwrap_or_default();
        let event = std::str::from_utf8(event).map_err(|_| corrupt("has a non-UTF-8 event"))?;
        let payload = body.get(payload_start..).unwrap_or_default();
        let payload =
            std::str::from_utf8(payload).map_err(|_| corrupt("has a non-UTF-8 payload"))?;
        Ok(Entry {
            seq,
            event: event.to_owned(),
            payload: payload.to_owned(),
        })
    }

    /// Number of pending entries.
    pub fn len(&self) -> usize {
        self.index.len() + self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty() && self.held.is_empty()
    }

    /// Samples held in memory because the spool could not be written.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// On-disk bytes of the pending entries, framing included: what `max_bytes` bounds.
    pub fn bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Entries dropped because the spool was full, over the spool's whole life (persisted).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// The spool file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes one entry takes on disk, as counted against `max_bytes`.
    pub fn entry_size(event: &str, payload: &str) -> u64 {
        HEADER_LEN + EVENT_START as u64 + event.len() as u64 + payload.len() as u64
    }
}

const MAGIC: &[u8; 8] = b"PMSPOOL\x01";
const TMP_NAME: &str = "spool.log.tmp";
/// `u32` length + `u32` CRC.
const HEADER_LEN: u64 = 8;
/// Kind + seq + event length: where an entry's event name starts in its body.
const EVENT_START: usize = 1 + 8 + 1;
const MAX_EVENT_LEN: usize = u8::MAX as usize;
/// The most of a record body replay keeps: an entry's kind, seq and longest event.
const PREFIX_LEN: usize = EVENT_START + MAX_EVENT_LEN;
/// A torn tail longer than this is more likely a damaged length field than an interrupted write:
/// the file is then kept aside like a corrupt one.
const TORN_TAIL_KEPT_ASIDE: u64 = 1024 * 1024;
/// The smallest entry record: header, kind, seq, event length, no event, no payload.
const MIN_ENTRY_LEN: u64 = HEADER_LEN + EVENT_START as u64;
/// No record body is larger; a bigger length field is damage, not a record.
const MAX_BODY_LEN: u64 = 256 * 1024 * 1024;
/// Compaction needs at least this many dead bytes (and more dead than live bytes).
const COMPACT_MIN_DEAD: u64 = 1024 * 1024;
/// Chunk size for streaming reads and copies: no payload is ever held whole while replaying.
const CHUNK: usize = 64 * 1024;

const KIND_ENTRY: u8 = 1;
const KIND_ACK: u8 = 2;
const KIND_DROP_THROUGH: u8 = 3;
const KIND_META: u8 = 4;
/// Magic + the Meta record every file starts with: never dead bytes.
const BASE_LEN: u64 = MAGIC.len() as u64 + HEADER_LEN + 1 + 8 + 8;

/// Where one pending entry's record lives in the file.
#[derive(Debug, Clone, Copy)]
struct Slot {
    seq: u64,
    offset: u64,
    /// The whole record, header included.
    len: u64,
}

/// A decoded record body (an entry's event and payload stay in the body).
#[derive(Debug, PartialEq, Eq)]
enum Record {
    Entry { seq: u64, payload_start: usize },
    Ack { seq: u64 },
    DropThrough { seq: u64 },
    Meta { next_seq: u64, dropped_total: u64 },
}

/// How replay ended.
/// What a replay has seen so far (carried across a resynchronisation).
#[derive(Debug, Clone, Copy)]
struct Replayed {
    last_entry_seq: u64,
    meta_next_seq: u64,
}

/// After damage, at most this much of the rest of the file is searched for the next record.
const RESYNC_MAX_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// All records valid up to end of file.
    Clean,
    /// A bad record at `offset` that may be an interrupted append: nothing valid follows it.
    Torn { offset: u64 },
    /// A bad record at `offset` with data after it.
    Corrupt { offset: u64, why: String },
}

impl Spool {
    /// Reads the file into the index, dealing with a new, torn or damaged file.
    fn load(&mut self) -> Result<()> {
        let len = self.current_len()?;
        let mut magic = [0; MAGIC.len()];
        let have = usize::try_from(len).unwrap_or(usize::MAX).min(MAGIC.len());
        self.file
            .read_exact_at(&mut magic[..have], 0)
            .map_err(|e| io_error(&self.path, "cannot read", &e))?;
        if magic[..have] != MAGIC[..have] {
            let aside = self.move_aside()?;
            log::warn!(
                "{} is not a spool file; moved it to {} and started an empty spool",
                self.path.display(),
                aside.display()
            );
            self.file = open_rw(&self.path, true)?;
            return self.start_fresh();
        }
        if len <= MAGIC.len() as u64 {
            // New, or interrupted while being created.
            return self.start_fresh();
        }

        let mut replayed = Replayed {
            last_entry_seq: 0,
            meta_next_seq: 1,
        };
        let mut stop = self.replay(MAGIC.len() as u64, len, &mut replayed)?;
        // Damage in the middle: go on from the next record that is whole (its length fits, its
        // checksum matches, it parses), so one bad record costs only itself.
        let mut skipped: Vec<(u64, u64, String)> = Vec::new();
        loop {
            // A length that runs past the end looks torn, but is damage if whole records follow.
            let (offset, why) = match &stop {
                Stop::Corrupt { offset, why } => (*offset, why.clone()),
                Stop::Torn { offset } => (*offset, "a record's length runs past the end".into()),
                Stop::Clean => break,
            };
            let Some(at) = self.next_valid_record(offset + 1, len, replayed.last_entry_seq)? else {
                break;
            };
            skipped.push((offset, at, why));
            stop = self.replay(at, len, &mut replayed)?;
        }
        self.next_seq = replayed
            .meta_next_seq
            .max(replayed.last_entry_seq + 1)
            .saturating_add(
                skipped
                    .iter()
                    .map(|(from, to, _)| (to - from) / MIN_ENTRY_LEN)
                    .sum(),
            );
        let stop = match stop {
            Stop::Torn { offset } if len - offset > TORN_TAIL_KEPT_ASIDE => Stop::Corrupt {
                offset,
                why: "a large torn tail".to_owned(),
            },
            // Resynchronised, then a clean or torn end: the file is rewritten without the
            // damaged ranges (and any torn tail), like a corrupt one.
            Stop::Clean | Stop::Torn { .. } if !skipped.is_empty() => {
                let end = match stop {
                    Stop::Torn { offset } => offset,
                    _ => len,
                };
                self.file_len = end;
                let aside = self.move_aside()?;
                self.compact()?;
                for (from, to, why) in &skipped {
                    log::warn!(
                        "{}: {why} at offset {from}; skipped {} damaged bytes and read on from \
                         the next whole record",
                        self.path.display(),
                        to - from
                    );
                }
                log::warn!(
                    "{}: kept the {} pending samples around the damage; moved the damaged file \
                     to {}",
                    self.path.display(),
                    self.index.len(),
                    aside.display()
                );
                return Ok(());
            }
            stop => stop,
        };
        match stop {
            Stop::Clean => self.file_len = len,
            Stop::Torn { offset } => {
                self.file
                    .set_len(offset)
                    .and_then(|()| self.file.sync_all())
                    .map_err(|e| io_error(&self.path, "cannot truncate the torn tail", &e))?;
                self.file_len = offset;
                log::warn!(
                    "{}: discarded a torn tail of {} bytes at offset {offset} (an interrupted write)",
                    self.path.display(),
                    len - offset
                );
            }
            Stop::Corrupt { offset, why } => {
                self.file_len = offset;
                // Seqs in the lost part were handed out, one per entry record and consecutively:
                // skip past as many as it could hold so none is ever handed out twice.
                self.next_seq += (len - offset) / MIN_ENTRY_LEN;
                let aside = self.move_aside()?;
                // `self.file` still reads the moved file: rewrite what was good before the damage.
                self.compact()?;
                log::warn!(
                    "{}: {why} at offset {offset}; kept the {} pending samples before it, \
                     dropped the {} bytes from there on and moved the damaged file to {}",
                    self.path.display(),
                    self.index.len(),
                    len - offset,
                    aside.display()
                );
            }
        }
        if self.file_len == MAGIC.len() as u64 {
            // Only the magic survived: give the file its Meta record.
            return self.compact();
        }
        Ok(())
    }

    /// Where the next whole record at or after `from` starts: its length within the file, its
    /// checksum right, its body parseable, an entry's seq above `last_entry_seq`. Reads the
    /// rest of the file into memory (only after damage, at most `RESYNC_MAX_BYTES`).
    fn next_valid_record(&self, from: u64, end: u64, last_entry_seq: u64) -> Result<Option<u64>> {
        if from >= end || end - from > RESYNC_MAX_BYTES {
            return Ok(None);
        }
        let mut tail = vec![0; usize::try_from(end - from).unwrap_or(0)];
        self.file
            .read_exact_at(&mut tail, from)
            .map_err(|e| io_error(&self.path, "cannot read", &e))?;
        let header = HEADER_LEN as usize;
        for at in 0..tail.len() {
            let Some(body_len) = u32_at(&tail, at).map(|n| n as usize) else {
                break;
            };
            if body_len == 0 || body_len as u64 > MAX_BODY_LEN {
                continue;
            }
            let Some(body) = tail.get(at + header..at + header + body_len) else {
                continue;
            };
            if u32_at(&tail, at + 4) != Some(crc32_finish(crc32_update(CRC_INIT, body))) {
                continue;
            }
            let whole = match parse_body(body.get(..PREFIX_LEN.min(body.len())).unwrap_or(body)) {
                Some(Record::Entry { seq, .. }) => seq > last_entry_seq,
                Some(_) => true,
                None => false,
            };
            if whole {
                return Ok(Some(from + at as u64));
            }
        }
        Ok(None)
    }

    /// Replays the records from `start` into the index; never reads more than `CHUNK` at a time.
    fn replay(&mut self, start: u64, file_len: u64, replayed: &mut Replayed) -> Result<Stop> {
        let read_error = |e: &io::Error| io_error(&self.path, "cannot read", e);
        let mut reader = BufReader::with_capacity(CHUNK, &self.file);
        reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| read_error(&e))?;
        let mut offset = start;
        let mut prefix = Vec::with_capacity(PREFIX_LEN);
        let mut chunk = vec![0; CHUNK];
        let Replayed {
            mut last_entry_seq,
            mut meta_next_seq,
        } = *replayed;
        let stop = loop {
            let remaining = file_len - offset;
            if remaining == 0 {
                break Stop::Clean;
            }
            if remaining < HEADER_LEN {
                break Stop::Torn { offset };
            }
            let mut header = [0; HEADER_LEN as usize];
            reader.read_exact(&mut header).map_err(|e| read_error(&e))?;
            let body_len = u64::from(u32_at(&header, 0).unwrap_or_default());
            let crc = u32_at(&header, 4).unwrap_or_default();
            let end = offset + HEADER_LEN + body_len;
            if end > file_len {
                break Stop::Torn { offset };
            }
            let bad = |why: &str| {
                if end == file_len {
                    Stop::Torn { offset }
                } else {
                    Stop::Corrupt {
                        offset,
                        why: why.to_owned(),
                    }
                }
            };
            if body_len == 0 || body_len > MAX_BODY_LEN {
                break bad(&format!("a record claims {body_len} bytes"));
            }

            // Stream the body: keep its first bytes for parsing, checksum all of it.
            prefix.clear();
            let mut crc_state = CRC_INIT;
            let mut left = body_len;
            while left > 0 {
                let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
                let buf = chunk.get_mut(..n).unwrap_or_default();
                reader.read_exact(buf).map_err(|e| read_error(&e))?;
                crc_state = crc32_update(crc_state, buf);
                let keep = (PREFIX_LEN - prefix.len()).min(n);
                prefix.extend_from_slice(buf.get(..keep).unwrap_or_default());
                left -= n as u64;
            }
            if crc32_finish(crc_state) != crc {
                break bad("a record fails its checksum");
            }
            match parse_body(&prefix) {
                Some(Record::Entry { seq, .. }) if seq > last_entry_seq => {
                    last_entry_seq = seq;
                    self.index.push_back(Slot {
                        seq,
                        offset,
                        len: HEADER_LEN + body_len,
                    });
                    self.live_bytes += HEADER_LEN + body_len;
                }
                Some(Record::Entry { seq, .. }) => {
                    break bad(&format!("entry seq {seq} follows seq {last_entry_seq}"));
                }
                Some(Record::Ack { seq }) => {
                    if let Ok(position) = self.position(seq) {
                        if let Some(slot) = self.index.remove(position) {
                            self.live_bytes -= slot.len;
                        }
                    }
                }
                Some(Record::DropThrough { seq }) => {
                    while let Some(slot) = self.index.front().filter(|slot| slot.seq <= seq) {
                        self.live_bytes -= slot.len;
                        self.index.pop_front();
                        self.dropped_total += 1;
                    }
                }
                Some(Record::Meta {
                    next_seq,
                    dropped_total,
                }) => {
                    meta_next_seq = meta_next_seq.max(next_seq);
                    self.dropped_total = dropped_total;
                }
                None => break bad("a record has an unknown kind or is malformed"),
            }
            offset = end;
        };
        *replayed = Replayed {
            last_entry_seq,
            meta_next_seq,
        };
        match stop {
            Stop::Corrupt { offset, .. } if self.all_zero_from(offset, file_len)? => {
                // Zeros after the last record: a crash before the file's new length reached the
                // disk, not damage.
                Ok(Stop::Torn { offset })
            }
            stop => Ok(stop),
        }
    }

    /// Whether the file holds only zero bytes from `offset` to `end`.
    fn all_zero_from(&self, mut offset: u64, end: u64) -> Result<bool> {
        let mut chunk = vec![0; CHUNK];
        while offset < end {
            let n = usize::try_from(end - offset).unwrap_or(CHUNK).min(CHUNK);
            let buf = chunk.get_mut(..n).unwrap_or_default();
            self.file
                .read_exact_at(buf, offset)
                .map_err(|e| io_error(&self.path, "cannot read", &e))?;
            if buf.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            offset += n as u64;
        }
        Ok(true)
    }

    /// Writes the magic and a Meta record into the (empty or torn) file.
    fn start_fresh(&mut self) -> Result<()> {
        let mut head = MAGIC.to_vec();
        push_record(&mut head, &self.meta_body());
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&head, 0))
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io_error(&self.path, "cannot write", &e))?;
        self.file_len = head.len() as u64;
        sync_dir(&self.dir)
    }

    /// Drops the oldest entries beyond the bounds (after a restart with smaller bounds).
    fn enforce_bounds(&mut self) -> Result<()> {
        let (dropped, _) = self.to_drop(0, 0);
        let Some(last) = dropped.checked_sub(1).and_then(|i| self.index.get(i)) else {
            return Ok(());
        };
        let mut record = Vec::new();
        push_record(&mut record, &small_body(KIND_DROP_THROUGH, last.seq, None));
        self.write_records(&[&record], Flush::Now)?;
        for slot in self.index.drain(..dropped) {
            self.live_bytes -= slot.len;
        }
        self.dropped_total += dropped as u64;
        log::warn!(
            "spool over its bounds: dropped {dropped} oldest samples (total dropped {})",
            self.dropped_total
        );
        Ok(())
    }

    /// How many of the oldest entries must go, and their bytes, to make room for `entries` more
    /// entries of `bytes` in all.
    fn to_drop(&self, entries: usize, bytes: u64) -> (usize, u64) {
        let mut count = 0;
        let mut freed = 0;
        for slot in &self.index {
            let fits = self.index.len() - count + entries <= self.config.max_entries
                && self.live_bytes - freed + bytes <= self.config.max_bytes;
            if fits {
                break;
            }
            count += 1;
            freed += slot.len;
        }
        (count, freed)
    }

    /// Writes `parts` back to back at the end of the file and syncs them; on failure cuts the
    /// file back so no partial record is left between good ones.
    fn write_records(&mut self, parts: &[&[u8]], flush: Flush) -> Result<()> {
        let mut offset = self.file_len;
        let result = parts
            .iter()
            .try_for_each(|part| {
                self.file.write_all_at(part, offset)?;
                offset += part.len() as u64;
                Ok(())
            })
            .and_then(|()| match flush {
                Flush::Now => self.file.sync_data(),
                Flush::Later => Ok(()),
            });
        match result {
            Ok(()) => {
                self.file_len = offset;
                if flush == Flush::Now {
                    self.synced_through = self.next_seq.saturating_sub(1);
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.file_len);
                Err(io_error(&self.path, "cannot write", &e))
            }
        }
    }

    /// Compacts if dead bytes exceed both the live bytes and `COMPACT_MIN_DEAD`. A failure is only
    /// logged: the log is still whole, just longer, and it is retried after another MiB.
    fn maybe_compact(&mut self) {
        let dead = self.file_len.saturating_sub(BASE_LEN + self.live_bytes);
        if dead < COMPACT_MIN_DEAD || dead <= self.live_bytes || dead < self.compact_retry_at {
            return;
        }
        match self.compact() {
            Ok(()) => self.compact_retry_at = 0,
            Err(e) => {
                log::warn!("{e}; will retry compaction later");
                self.compact_retry_at = dead + COMPACT_MIN_DEAD;
            }
        }
    }

    /// Rewrites the pending entries into a temp file, syncs it and renames it over the spool.
    fn compact(&mut self) -> Result<()> {
        let tmp = self.dir.join(TMP_NAME);
        let (file, index, len) = match self.write_compacted(&tmp) {
            Ok(written) => written,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        };
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_error(
                &self.path,
                "cannot replace with the compacted file",
                &e,
            ));
        }
        // The rename is done: from here on the new file is the spool, whatever else fails.
        self.file = file;
        self.index = index;
        self.file_len = len;
        self.synced_through = self.next_seq.saturating_sub(1);
        sync_dir(&self.dir)
    }

    fn write_compacted(&self, tmp: &Path) -> Result<(File, VecDeque<Slot>, u64)> {
        let file = open_rw(tmp, true)?;
        let write_error = |e: &io::Error| io_error(tmp, "cannot write", e);
        let mut head = MAGIC.to_vec();
        push_record(&mut head, &self.meta_body());
        let mut writer = BufWriter::with_capacity(CHUNK, &file);
        writer.write_all(&head).map_err(|e| write_error(&e))?;
        let mut offset = head.len() as u64;
        let mut index = VecDeque::with_capacity(self.index.len());
        let mut chunk = vec![0; CHUNK];
        for slot in &self.index {
            let mut copied = 0;
            while copied < slot.len {
                let n = usize::try_from(slot.len - copied)
                    .unwrap_or(CHUNK)
                    .min(CHUNK);
                let buf = chunk.get_mut(..n).unwrap_or_default();
                self.file
                    .read_exact_at(buf, slot.offset + copied)
                    .map_err(|e| io_error(&self.path, "cannot read", &e))?;
                writer.write_all(buf).map_err(|e| write_error(&e))?;
                copied += n as u64;
            }
            index.push_back(Slot { offset, ..*slot });
            offset += slot.len;
        }
        writer.flush().map_err(|e| write_error(&e))?;
        drop(writer);
        file.sync_all().map_err(|e| write_error(&e))?;
        Ok((file, index, offset))
    }

    /// Renames the spool file to `spool.log.corrupt-<unix time>`; returns the new path.
    fn move_aside(&self) -> Result<PathBuf> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut aside = self.dir.join(format!("{FILE_NAME}.corrupt-{now}"));
        let mut n = 1;
        while aside.exists() {
            aside = self.dir.join(format!("{FILE_NAME}.corrupt-{now}-{n}"));
            n += 1;
        }
        fs::rename(&self.path, &aside)
            .map_err(|e| io_error(&self.path, "cannot move the damaged file aside", &e))?;
        sync_dir(&self.dir)?;
        Ok(aside)
    }

    fn meta_body(&self) -> Vec<u8> {
        small_body(KIND_META, self.next_seq, Some(self.dropped_total))
    }

    fn position(&self, seq: u64) -> Result<usize, usize> {
        self.index.binary_search_by_key(&seq, |slot| slot.seq)
    }

    fn current_len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io_error(&self.path, "cannot stat", &e))
    }
}

/// Opens `path` for reading and writing with mode 0600, creating it; `truncate` empties it.
fn open_rw(path: &Path, truncate: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(0o600)
        .open(path)
        .map_err(|e| io_error(path, "cannot open", &e))
}

/// Makes a create or rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "cannot sync the directory", &e))
}

/// A body of one kind byte and one or two `u64`s.
fn small_body(kind: u8, first: u64, second: Option<u64>) -> Vec<u8> {
    let mut body = Vec::with_capacity(17);
    body.push(kind);
    body.extend_from_slice(&first.to_le_bytes());
    if let Some(second) = second {
        body.extend_from_slice(&second.to_le_bytes());
    }
    body
}

/// Frames `body` (always small here) and appends it to `out`.
fn push_record(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32_finish(crc32_update(CRC_INIT, body)).to_le_bytes());
    out.extend_from_slice(body);
}

/// Decodes a record body, or its first bytes for an entry (the payload is not needed).
fn parse_body(body: &[u8]) -> Option<Record> {
    let (&kind, rest) = body.split_first()?;
    let first = u64_at(rest, 0)?;
    match (kind, rest.len()) {
        (KIND_ENTRY, _) => {
            let event_len = usize::from(*rest.get(8)?);
            let payload_start = EVENT_START + event_len;
            // The event must be inside the body; for a prefix, inside what we kept of it.
            (body.len() >= payload_start).then_some(Record::Entry {
                seq: first,
                payload_start,
            })
        }
        (KIND_ACK, 8) => Some(Record::Ack { seq: first }),
        (KIND_DROP_THROUGH, 8) => Some(Record::DropThrough { seq: first }),
        (KIND_META, 16) => Some(Record::Meta {
            next_seq: first,
            dropped_total: u64_at(rest, 8)?,
        }),
        _ => None,
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b = bytes.get(at..at + 8)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn spool_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Spool {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_error(path: &Path, what: &str, e: &io::Error) -> Error {
    spool_error(path, format!("{what}: {e}"))
}

// CRC-32 (IEEE 802.3, as in zlib and gzip), table-driven; the table is built at compile time.
const CRC_INIT: u32 = 0xFFFF_FFFF;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32_update(mut state: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        state = CRC_TABLE[((state ^ u32::from(b)) & 0xFF) as usize] ^ (state >> 8);
    }
    state
}

fn crc32_finish(state: u32) -> u32 {
    state ^ 0xFFFF_FFFF
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let dir =
                std::env::temp_dir().join(format!("pm-spool-{}-{n}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            TempDir(dir)
        }

        fn spool_path(&self) -> PathBuf {
            self.0.join(FILE_NAME)
        }

        fn corrupt_files(&self) -> Vec<PathBuf> {
            fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().contains(".corrupt-"))
                .collect()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn open(dir: &TempDir) -> Spool {
        Spool::open(&dir.0, SpoolConfig::default()).unwrap()
    }

    fn payload(n: u64) -> String {
        format!(r#"{{"collected_at":{n},"data":{{"load1":0.5}}}}"#)
    }

    fn pending(spool: &Spool) -> Vec<u64> {
        spool.pending_seqs().collect()
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).unwrap().len()
    }

    #[test]
    fn a_full_disk_holds_samples_in_memory_in_seq_order_until_acknowledged() {
        let dir = TempDir::new("full-disk");
        let mut spool = open(&dir);
        assert_eq!(
            spool.append_unsynced("metric:fast", &payload(1)).unwrap(),
            1
        );
        // The disk fills up: every write now fails with ENOSPC.
        let disk = std::mem::replace(
            &mut spool.file,
            OpenOptions::new().write(true).open("/dev/full").unwrap(),
        );
        let e = spool
            .append_unsynced("metric:fast", &payload(2))
            .unwrap_err();
        assert!(e.to_string().contains("spool.log"), "{e}");
        assert_eq!(spool.hold("metric:fast", &payload(2)), Some(2));
        assert_eq!(spool.hold("metric:slow", &payload(3)), Some(3));
        assert_eq!(pending(&spool), [1, 2, 3]);
        assert_eq!(spool.len(), 3);
        assert_eq!(spool.read(3).unwrap().event, "metric:slow");
        assert_eq!(spool.read(2).unwrap().payload, payload(2));
        spool.ack(2).unwrap();
        assert_eq!(pending(&spool), [1, 3]);
        // The disk has room again: new samples go to the file, after the held ones.
        spool.file = disk;
        assert_eq!(
            spool.append_unsynced("metric:fast", &payload(4)).unwrap(),
            4
        );
        assert_eq!(pending(&spool), [1, 3, 4]);
        spool.ack(3).unwrap();
        assert_eq!(spool.held(), 0);
        assert_eq!(spool.read(4).unwrap().payload, payload(4));
        assert_eq!(spool.read(1).unwrap().payload, payload(1));
    }

    #[test]
    fn samples_held_in_memory_are_bounded() {
        let dir = TempDir::new("held-bounds");
        let mut spool = open(&dir);
        for n in 0..(MAX_HELD as u64 + 10) {
            assert!(spool.hold("metric:fast", &payload(n)).is_some());
        }
        assert_eq!(spool.held(), MAX_HELD);
        assert_eq!(spool.dropped_total(), 10);
        assert_eq!(pending(&spool).first(), Some(&11));
        assert_eq!(
            spool.hold("metric:fast", &"x".repeat(MAX_HELD_BYTES + 1)),
            None
        );
    }

    #[test]
    fn reopen_keeps_only_unacked_in_order() {
        let dir = TempDir::new("reopen");
        let mut spool = open(&dir);
        assert!(spool.is_empty());
        for n in 1..=5 {
            assert_eq!(spool.append("metric:fast", &payload(n)).unwrap(), n);
        }
        spool.ack(2).unwrap();
        spool.ack(4).unwrap();
        assert_eq!(pending(&spool), [1, 3, 5]);
        drop(spool);

        let spool = open(&dir);
        assert_eq!(pending(&spool), [1, 3, 5]);
        assert_eq!(spool.len(), 3);
        assert_eq!(
            spool.read(3).unwrap(),
            Entry {
                seq: 3,
                event: "metric:fast".into(),
                payload: payload(3),
            }
        );
        assert!(spool.read(2).is_err(), "acked entries cannot be read");
        let expected: u64 = [1, 3, 5]
            .iter()
            .map(|&n| Spool::entry_size("metric:fast", &payload(n)))
            .sum();
        assert_eq!(spool.bytes(), expected);
    }

    #[test]
    fn unsynced_appends_need_a_sync_until_acked_or_synced() {
        let dir = TempDir::new("unsynced");
        let mut spool = open(&dir);
        assert!(!spool.needs_sync());
        let a = spool.append_unsynced("metric:fast", &payload(1)).unwrap();
        assert!(spool.needs_sync());
        // Acknowledged before anyone synced: the server has it, no sync needed.
        spool.ack(a).unwrap();
        assert!(!spool.needs_sync());
        // A synced append carries the unsynced one before it to disk.
        spool.append_unsynced("metric:fast", &payload(2)).unwrap();
        spool.append("metric:fast", &payload(3)).unwrap();
        assert!(!spool.needs_sync());
        spool.append_unsynced("metric:fast", &payload(4)).unwrap();
        assert!(spool.needs_sync());
        spool.sync().unwrap();
        assert!(!spool.needs_sync());
        spool.append_unsynced("metric:fast", &payload(5)).unwrap();
        drop(spool);
        // Reopened (after a kill, its writes may be only in the page cache): everything pending
        // counts as unsynced until synced.
        let mut spool = open(&dir);
        assert_eq!(pending(&spool), [2, 3, 4, 5]);
        assert!(spool.needs_sync());
        spool.sync().unwrap();
        assert!(!spool.needs_sync());
        for seq in [2, 3, 4, 5] {
            spool.ack(seq).unwrap();
        }
        assert!(!spool.needs_sync());
        assert!(spool.is_empty());
    }

    #[test]
    fn directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mkdir");
        let state = dir.0.join("var/lib/proxmox-monitor");
        let spool = Spool::open(&state, SpoolConfig::default()).unwrap();
        assert_eq!(spool.path(), state.join(FILE_NAME));
        let mode = fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn seq_survives_reopen_even_when_everything_was_acked_and_compacted() {
        let dir = TempDir::new("seq");
        let mut spool = open(&dir);
        let big = "x".repeat(300 * 1024);
        for n in 1..=4 {
            assert_eq!(spool.append("metric:slow", &big).unwrap(), n);
            spool.ack(n).unwrap();
        }
        // 1.2 MB of dead records, nothing live: compacted down to magic + meta.
        assert_eq!(file_len(&dir.spool_path()), BASE_LEN);
        drop(spool);

        let mut spool = open(&dir);
        assert!(spool.is_empty());
        assert_eq!(spool.append("metric:fast", &payload(5)).unwrap(), 5);
        drop(spool);
        let mut spool = open(&dir);
        assert_eq!(spool.append("metric:fast", &payload(6)).unwrap(), 6);
        assert_eq!(pending(&spool), [5, 6]);
    }

    #[test]
    fn bound_by_entries_drops_oldest() {
        let dir = TempDir::new("entries");
        let config = SpoolConfig {
            max_entries: 5,
            ..SpoolConfig::default()
        };
        let mut spool = Spool::open(&dir.0, config).unwrap();
        for n in 1..=8 {
            spool.append("metric:fast", &payload(n)).unwrap();
        }
        assert_eq!(pending(&spool), [4, 5, 6, 7, 8]);
        assert_eq!(spool.dropped_total(), 3);
        drop(spool);

        let mut spool = Spool::open(&dir.0, config).unwrap();
        assert_eq!(pending(&spool), [4, 5, 6, 7, 8]);
        assert_eq!(spool.dropped_total(), 3);
        // Acked entries leave room: no drop.
        spool.ack(6).unwrap();
        spool.append("metric:fast", &payload(9)).unwrap();
        assert_eq!(pending(&spool), [4, 5, 7, 8, 9]);
        assert_eq!(spool.dropped_total(), 3);
    }

    #[test]
    fn bound_by_bytes_drops_oldest() {
        let dir = TempDir::new("bytes");
        let body = "y".repeat(1000);
        let size = Spool::entry_size("metric:medium", &body);
        let config = SpoolConfig {
            max_entries: 1000,
            max_bytes: 3 * size + size / 2,
        };
        let mut spool = Spool::open(&dir.0, config).unwrap();
        for _ in 0..7 {
            spool.append("metric:medium", &body).unwrap();
        }
        assert_eq!(pending(&spool), [5, 6, 7]);
        assert_eq!(spool.dropped_total(), 4);
        assert_eq!(spool.bytes(), 3 * size);

        // One big sample pushes out as many old ones as it needs.
        let big = "z".repeat(2 * 1000);
        spool.append("metric:medium", &big).unwrap();
        assert_eq!(pending(&spool), [7, 8]);
        assert_eq!(spool.dropped_total(), 6);

        // A sample bigger than the whole spool is refused, and nothing is dropped for it.
        let huge = "h".repeat(4 * 1000);
        assert!(spool.append("metric:medium", &huge).is_err());
        assert_eq!(pending(&spool), [7, 8]);
        drop(spool);
        let spool = Spool::open(&dir.0, config).unwrap();
        assert_eq!(pending(&spool), [7, 8]);
        assert_eq!(spool.dropped_total(), 6);
        assert_eq!(spool.read(8).unwrap().payload, big);
    }

    #[test]
    fn smaller_bounds_on_reopen_drop_oldest() {
        let dir = TempDir::new("shrink");
        let mut spool = open(&dir);
        for n in 1..=6 {
            spool.append("metric:fast", &payload(n)).unwrap();
        }
        drop(spool);
        let config = SpoolConfig {
            max_entries: 2,
            ..SpoolConfig::default()
        };
        let spool = Spool::open(&dir.0, config).unwrap();
        assert_eq!(pending(&spool), [5, 6]);
        assert_eq!(spool.dropped_total(), 4);
        drop(spool);
        let spool = open(&dir);
        assert_eq!(pending(&spool), [5, 6]);
    }

    #[test]
    fn torn_tail_recovers_all_complete_records() {
        let dir = TempDir::new("torn");
        let mut spool = open(&dir);
        for n in 1..=3 {
            spool.append("metric:fast", &payload(n)).unwrap();
        }
        spool.ack(1).unwrap();
        let good_len = file_len(&dir.spool_path());
        spool.append("metric:fast", &payload(4)).unwrap();
        drop(spool);
        // A crash in the middle of writing seq 4.
        let file = OpenOptions::new()
            .write(true)
            .open(dir.spool_path())
            .unwrap();
        file.set_len(good_len + 10).unwrap();
        drop(file);

        let mut spool = open(&dir);
        assert_eq!(pending(&spool), [2, 3]);
        assert_eq!(file_len(&dir.spool_path()), good_len);
        assert!(dir.corrupt_files().is_empty());
        // Seq 4 was never handed out durably, so it is handed out again.
        assert_eq!(spool.append("metric:fast", &payload(4)).unwrap(), 4);
        drop(spool);
        let spool = open(&dir);
        assert_eq!(pending(&spool), [2, 3, 4]);
        assert_eq!(spool.read(4).unwrap().payload, payload(4));
    }

    #[test]
    fn every_truncation_point_recovers_a_prefix() {
        let dir = TempDir::new("truncations");
        let mut spool = open(&dir);
        for n in 1..=3 {
            spool.append("metric:fast", &payload(n)).unwrap();
        }
        spool.ack(2).unwrap();
        drop(spool);
        let whole = fs::read(dir.spool_path()).unwrap();
        for cut in 0..whole.len() {
            fs::write(dir.spool_path(), &whole[..cut]).unwrap();
            let spool = open(&dir);
            let seqs = pending(&spool);
            assert!(
                [&[][..], &[1], &[1, 2], &[1, 2, 3], &[1, 3]].contains(&seqs.as_slice()),
                "cut at {cut}: {seqs:?}"
            );
            for seq in seqs {
                assert_eq!(spool.read(seq).unwrap().payload, payload(seq));
            }
            assert!(dir.corrupt_files().is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let dir = TempDir::new("zeros");
        let mut spool = open(&dir);
        spool.append("metric:fast", &payload(1)).unwrap();
        drop(spool);
        let good_len = file_len(&dir.spool_path());
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.spool_path())
            .unwrap();
        file.write_all(&[0; 4096]).unwrap();
        drop(file);

        let spool = open(&dir);
        assert_eq!(pending(&spool), [1]);
        assert_eq!(file_len(&dir.spool_path()), good_len);
        assert!(dir.corrupt_files().is_empty());
    }

    #[test]
    fn garbage_file_is_moved_aside_and_a_fresh_spool_works() {
        let dir = TempDir::new("garbage");
        fs::create_dir_all(&dir.0).unwrap();
        let garbage: Vec<u8> = (0..10_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        fs::write(dir.spool_path(), &garbage).unwrap();

        let mut spool = open(&dir);
        assert!(spool.is_empty());
        let aside = dir.corrupt_files();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(&aside[0]).unwrap(), garbage);
        assert_eq!(spool.append("metric:fast", &payload(1)).unwrap(), 1);
        drop(spool);
        let spool = open(&dir);
        assert_eq!(pending(&spool), [1]);
    }

    #[test]
    fn damaged_record_in_the_middle_keeps_what_came_before() {
        let dir = TempDir::new("damaged");
        let mut spool = open(&dir);
        for n in 1..=3 {
            spool.append("metric:fast", &payload(n)).unwrap();
        }
        let second = spool.index[1];
        drop(spool);
        let mut bytes = fs::read(dir.spool_path()).unwrap();
        let flip = usize::try_from(second.offset + second.len - 3).unwrap();
        bytes[flip] ^= 0x55;
        fs::write(dir.spool_path(), &bytes).unwrap();

        let mut spool = open(&dir);
        // Only the damaged record is lost: reading resumes at the next whole one.
        assert_eq!(pending(&spool), [1, 3]);
        assert_eq!(spool.read(1).unwrap().payload, payload(1));
        assert_eq!(spool.read(3).unwrap().payload, payload(3));
        let aside = dir.corrupt_files();
        assert_eq!(aside.len(), 1);
        assert_eq!(fs::read(&aside[0]).unwrap(), bytes);
        // Seq 2 may have been handed out before: never again.
        let seq = spool.append("metric:fast", &payload(4)).unwrap();
        assert!(seq > 3, "{seq}");
        drop(spool);
        let spool = open(&dir);
        assert_eq!(pending(&spool), [1, 3, seq]);
    }

    #[test]
    fn damage_anywhere_in_one_record_costs_only_that_record() {
        let dir = TempDir::new("resync");
        let mut spool = open(&dir);
        for n in 1..=5 {
            spool.append("metric:fast", &payload(n)).unwrap();
        }
        spool.ack(4).unwrap();
        let third = spool.index[2];
        drop(spool);
        let clean = fs::read(dir.spool_path()).unwrap();
        for at in third.offset..third.offset + third.len {
            let mut bytes = clean.clone();
            bytes[usize::try_from(at).unwrap()] ^= 0xA5;
            for aside in dir.corrupt_files() {
                fs::remove_file(aside).unwrap();
            }
            fs::write(dir.spool_path(), &bytes).unwrap();
            let spool = open(&dir);
            let seqs = pending(&spool);
            assert!(
                seqs == [1, 2, 5] || seqs == [1, 2, 3, 5],
                "damage at {at}: {seqs:?}"
            );
            for seq in seqs {
                assert_eq!(spool.read(seq).unwrap().payload, payload(seq));
            }
        }
    }

    #[test]
    fn large_torn_tail_is_kept_aside() {
        let dir = TempDir::new("bigtorn");
        let mut spool = open(&dir);
        spool.append("metric:fast", &payload(1)).unwrap();
        drop(spool);
        // A length field claiming far more than is there, then 2 MiB: not one interrupted write.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.spool_path())
            .unwrap();
        file.write_all(&(100_000_000u32).to_le_bytes()).unwrap();
        file.write_all(&vec![7; 2 * 1024 * 1024]).unwrap();
        drop(file);

        let mut spool = open(&dir);
        assert_eq!(pending(&spool), [1]);
        assert_eq!(dir.corrupt_files().len(), 1);
        assert!(file_len(&dir.spool_path()) < 1024);
        assert!(spool.append("metric:fast", &payload(2)).unwrap() > 1);
    }

    #[test]
    fn damage_found_by_read_is_an_error_not_a_panic() {
        let dir = TempDir::new("readcrc");
        let mut spool = open(&dir);
        spool.append("metric:fast", &payload(1)).unwrap();
        let slot = spool.index[0];
        let file = OpenOptions::new()
            .write(true)
            .open(dir.spool_path())
            .unwrap();
        file.write_all_at(b"#", slot.offset + slot.len - 2).unwrap();
        let err = spool.read(1).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        assert!(err.contains(FILE_NAME), "{err}");
        // The caller discards it.
        spool.ack(1).unwrap();
        assert!(spool.is_empty());
    }

    #[test]
    fn compaction_keeps_content_and_shrinks_the_file() {
        let dir = TempDir::new("compact");
        let mut spool = open(&dir);
        let bodies: Vec<String> = (0..50u8)
            .map(|n| char::from(b'a' + n % 26).to_string().repeat(50 * 1024))
            .collect();
        for body in &bodies {
            spool.append("metric:slow", body).unwrap();
        }
        let full_len = file_len(&dir.spool_path());
        for seq in 1..=45 {
            spool.ack(seq).unwrap();
        }
        let compacted_len = file_len(&dir.spool_path());
        // Compacted once dead bytes passed the live ones; what was acked since is under 1 MiB.
        assert!(compacted_len < full_len, "{compacted_len} vs {full_len}");
        assert!(
            compacted_len <= BASE_LEN + spool.bytes() + COMPACT_MIN_DEAD,
            "{compacted_len}"
        );
        assert_eq!(pending(&spool), [46, 47, 48, 49, 50]);
        for seq in 46..=50 {
            assert_eq!(spool.read(seq).unwrap().payload, bodies[seq as usize - 1]);
        }
        assert!(!dir.0.join(TMP_NAME).exists());
        drop(spool);

        let mut spool = open(&dir);
        assert_eq!(pending(&spool), [46, 47, 48, 49, 50]);
        assert_eq!(spool.read(48).unwrap().payload, bodies[47]);
        assert_eq!(spool.append("metric:fast", &payload(51)).unwrap(), 51);
    }

    #[test]
    fn ack_of_unknown_seq_is_harmless() {
        let dir = TempDir::new("unknown");
        let mut spool = open(&dir);
        spool.ack(42).unwrap();
        spool.append("metric:fast", &payload(1)).unwrap();
        spool.append("metric:fast", &payload(2)).unwrap();
        let len = file_len(&dir.spool_path());
        spool.ack(0).unwrap();
        spool.ack(99).unwrap();
        assert_eq!(file_len(&dir.spool_path()), len, "no-op acks write nothing");
        spool.ack(1).unwrap();
        spool.ack(1).unwrap();
        assert_eq!(pending(&spool), [2]);
        drop(spool);
        let spool = open(&dir);
        assert_eq!(pending(&spool), [2]);
    }

    #[test]
    fn big_payload_round_trips() {
        let dir = TempDir::new("big");
        let mut spool = open(&dir);
        let big: String = (0..1024 * 1024)
            .map(|i| char::from(b'0' + (i % 10) as u8))
            .collect();
        let seq = spool.append("metric:slow", &big).unwrap();
        assert_eq!(spool.read(seq).unwrap().payload, big);
        drop(spool);
        let spool = open(&dir);
        let entry = spool.read(seq).unwrap();
        assert_eq!(entry.event, "metric:slow");
        assert_eq!(entry.payload, big);
    }

    #[test]
    fn over_long_event_name_is_refused() {
        let dir = TempDir::new("event");
        let mut spool = open(&dir);
        assert!(spool.append(&"e".repeat(300), "{}").is_err());
        assert!(spool.is_empty());
    }

    #[test]
    fn many_appends_and_acks_keep_the_file_small() {
        // 3000 samples, each acked: a day and a bit of fast samples. Compaction must keep the
        // file bounded and the index empty; no timing asserted.
        let dir = TempDir::new("many");
        let mut spool = open(&dir);
        let body = "m".repeat(1024);
        let mut max_len = 0;
        for n in 1..=3000 {
            let seq = spool.append("metric:fast", &body).unwrap();
            assert_eq!(seq, n);
            if n % 3 == 0 {
                // Some acks out of order, as replies may arrive.
                spool.ack(n).unwrap();
                spool.ack(n - 2).unwrap();
                spool.ack(n - 1).unwrap();
            }
            max_len = max_len.max(file_len(&dir.spool_path()));
        }
        assert!(spool.is_empty());
        assert!(max_len < 2 * COMPACT_MIN_DEAD + 64 * 1024, "{max_len}");
        drop(spool);
        let mut spool = open(&dir);
        assert!(spool.is_empty());
        assert_eq!(spool.append("metric:fast", &body).unwrap(), 3001);
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(
            crc32_finish(crc32_update(CRC_INIT, b"123456789")),
            0xCBF4_3926
        );
    }
}
