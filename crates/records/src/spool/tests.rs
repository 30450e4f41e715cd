//! Unit tests of the spool: lanes, format, accounting, reclaiming and the lock.

use super::*;

use crate::fixtures::enum_record as record;

#[test]
fn appends_rotate_and_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions { segment_bytes: 2048, ..Default::default() }).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    let written: Vec<Record> = (0..100).map(record).collect();
    for r in &written {
        lane.append(r).unwrap();
    }
    assert!(segments(dir.path()).unwrap().len() > 5, "segments should rotate");
    assert_eq!(read_all(dir.path()).unwrap(), written);
    assert_eq!(spool.stats().records.load(Ordering::Relaxed), 100);
}

#[test]
fn reopened_lane_continues_numbering_without_touching_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    spool.lane("w0").unwrap().append(&record(1)).unwrap();
    spool.lane("w0").unwrap().append(&record(2)).unwrap();
    let names: Vec<String> =
        segments(dir.path()).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["w0-0000000001.seg", "w0-0000000002.seg"]);
    assert_eq!(read_all(dir.path()).unwrap().len(), 2);
}

#[test]
fn torn_and_corrupt_tails_stop_the_reader_without_losing_earlier_records() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    for i in 0..3 {
        lane.append(&record(i)).unwrap();
    }
    let path = segments(dir.path()).unwrap().remove(0);
    let full = fs::read(&path).unwrap();
    let whole = decode_segment(&full);
    assert_eq!((whole.records.len(), whole.damage), (3, None));
    let torn = decode_segment(&full[..full.len() - 5]);
    assert_eq!(torn.records.len(), 2);
    assert!(torn.damage.unwrap().contains("cut short"));
    let mut flipped = full.clone();
    let last = flipped.len() - 3;
    flipped[last] ^= 0xff;
    let corrupt = decode_segment(&flipped);
    assert_eq!(corrupt.records.len(), 2);
    assert!(corrupt.damage.unwrap().contains("checksum"));
    assert!(decode_segment(b"garbage").damage.is_some());
}

#[test]
fn fsync_thread_syncs_dirty_segments() {
    let dir = tempfile::tempdir().unwrap();
    let spool =
        Spool::open(dir.path(), SpoolOptions { fsync_interval: Duration::from_millis(10), ..Default::default() })
            .unwrap();
    let mut lane = spool.lane("w0").unwrap();
    lane.append(&record(1)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while spool.stats().fsyncs.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "no fsync within 5 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn bad_lane_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(spool.lane("a/b").is_err());
    assert!(spool.lane("").is_err());
}

fn size_of(r: &Record) -> u64 {
    serde_json::to_vec(r).unwrap().len() as u64 + 8
}

#[test]
fn acknowledged_records_never_count_against_the_limit() {
    // One lane whose segment never fills: before the fix every byte in it counted against
    // the limit, acknowledged or not, and the spool refused everything after 20 kB.
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { max_unacked_bytes: 20_000, segment_bytes: 1 << 30, ..Default::default() };
    let spool = Spool::open(dir.path(), options).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    let seg = segments(dir.path()).unwrap().remove(0);
    let mut end = HEADER_LEN;
    for i in 0..1000 {
        let r = record(i);
        lane.append(&r).unwrap();
        end += size_of(&r);
        if i % 10 == 9 {
            spool.acknowledge(&seg, end).unwrap();
        }
        assert!(spool.usage().unacked_bytes <= 20_000);
    }
    let u = spool.usage();
    assert_eq!(spool.stats().refused.load(Ordering::Relaxed), 0);
    assert_eq!(u.disk_bytes, end, "every byte on disk is counted");
    assert_eq!(u.disk_bytes, fs::metadata(&seg).unwrap().len());
    assert_eq!(u.unacked_bytes, 0);
    assert!(u.disk_bytes > 100_000, "far more than the limit was written: {u:?}");
    assert!(!u.near_full && !u.full);
}

#[test]
fn the_limit_refuses_records_once_the_unacknowledged_bytes_reach_it() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(
        dir.path(),
        SpoolOptions { max_unacked_bytes: 100_000, near_full_percent: 50, ..Default::default() },
    )
    .unwrap();
    let mut lane = spool.lane("w0").unwrap();
    let (mut accepted, mut refused) = (0u64, 0u64);
    for i in 0..1000 {
        match lane.append(&record(i)) {
            Ok(()) => accepted += 1,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::StorageFull);
                refused += 1;
            }
        }
    }
    let u = spool.usage();
    assert!(accepted > 100 && refused > 0, "{accepted} accepted, {refused} refused");
    assert!(u.unacked_bytes <= 100_000 && u.full && u.near_full, "{u:?}");
    assert_eq!(spool.stats().refused.load(Ordering::Relaxed), refused);
    // Acknowledging frees room at once.
    let seg = segments(dir.path()).unwrap().remove(0);
    spool.acknowledge(&seg, u.disk_bytes).unwrap();
    assert_eq!(spool.usage().unacked_bytes, 0);
    lane.append(&record(1)).unwrap();
}

#[test]
fn reopening_recounts_disk_and_unacknowledged_bytes_from_segments_and_ack_files() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { segment_bytes: 4096, ..Default::default() };
    let before = {
        let spool = Spool::open(dir.path(), options.clone()).unwrap();
        let mut lane = spool.lane("w0").unwrap();
        for i in 0..60 {
            lane.append(&record(i)).unwrap();
        }
        // Acknowledge the first segment whole and half of the second.
        let segs = segments(dir.path()).unwrap();
        assert!(segs.len() > 3);
        spool.acknowledge(&segs[0], fs::metadata(&segs[0]).unwrap().len()).unwrap();
        let second = read_segment(&segs[1]).unwrap();
        let half = (second.valid_bytes / 2).max(HEADER_LEN + 1);
        let bytes = fs::read(&segs[1]).unwrap();
        let frames = scan_frames(&bytes[8..], HEADER_LEN).frames;
        let mid = frames.iter().map(|(_, end)| *end).find(|end| *end >= half).unwrap();
        spool.acknowledge(&segs[1], mid).unwrap();
        drop(lane);
        spool.usage()
    };
    let disk: u64 = segments(dir.path()).unwrap().iter().map(|s| fs::metadata(s).unwrap().len()).sum();
    assert_eq!(before.disk_bytes, disk);
    let again = Spool::open(dir.path(), options).unwrap();
    let after = again.usage();
    assert_eq!((after.disk_bytes, after.unacked_bytes), (before.disk_bytes, before.unacked_bytes));
    assert!(after.unacked_bytes < after.disk_bytes);
}

#[test]
fn a_lane_moves_on_from_a_partly_acknowledged_segment_after_reclaim_after() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { reclaim_after: Duration::ZERO, segment_bytes: 1 << 30, ..Default::default() };
    let spool = Spool::open(dir.path(), options).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    let one = record(1);
    lane.append(&one).unwrap();
    lane.append(&record(2)).unwrap();
    assert_eq!(segments(dir.path()).unwrap().len(), 1, "nothing acknowledged: no reason to move on");
    let first = segments(dir.path()).unwrap().remove(0);
    // The record written, not one made again (another time may print shorter).
    spool.acknowledge(&first, HEADER_LEN + size_of(&one)).unwrap();
    lane.append(&record(3)).unwrap();
    let segs = segments(dir.path()).unwrap();
    assert_eq!(segs.len(), 2, "the lane started a new segment");
    assert!(!spool.open_segments().contains(&first), "the old one is closed, so it can be deleted once shipped");
}

#[test]
fn open_and_unacknowledged_segments_are_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    lane.append(&record(1)).unwrap();
    let seg = segments(dir.path()).unwrap().remove(0);
    let len = fs::metadata(&seg).unwrap().len();
    spool.acknowledge(&seg, len).unwrap();
    assert!(spool.remove_acknowledged(&seg).is_err(), "open: a lane still writes it");
    assert!(spool.set_aside(&seg).is_err());
    assert!(seg.exists());
    lane.append(&record(2)).unwrap();
    drop(lane);
    assert!(spool.remove_acknowledged(&seg).is_err(), "closed, but its last record is not acknowledged");
    spool.acknowledge(&seg, fs::metadata(&seg).unwrap().len()).unwrap();
    spool.remove_acknowledged(&seg).unwrap();
    assert!(!seg.exists() && !seg.with_extension("ack").exists());
    let u = spool.usage();
    assert_eq!((u.disk_bytes, u.unacked_bytes, u.segments), (0, 0, 0));
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { holder: "tollgate serve".into(), ..Default::default() };
    let first = Spool::open(dir.path(), options.clone()).unwrap();
    let e = Spool::open(dir.path(), SpoolOptions::default()).err().expect("the directory is locked");
    assert!(matches!(e, OpenError::InUse(_)));
    assert_eq!(
        e.to_string(),
        format!("spool directory {} is in use by pid {} (tollgate serve)", dir.path().display(), std::process::id())
    );
    drop(first);
    Spool::open(dir.path(), options).expect("free once the holder is gone");
}

#[test]
fn an_open_segment_deleted_by_someone_else_is_left_for_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { fsync_interval: Duration::from_millis(10), ..Default::default() };
    let spool = Spool::open(dir.path(), options).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    lane.append(&record(1)).unwrap();
    let seg = segments(dir.path()).unwrap().remove(0);
    fs::remove_file(&seg).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while spool.stats().unlinked.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "the deleted segment was not noticed");
        std::thread::sleep(Duration::from_millis(5));
    }
    lane.append(&record(2)).unwrap();
    assert_eq!(read_all(dir.path()).unwrap().len(), 1, "the next record went to a new segment on disk");
}

#[test]
fn the_backlog_counts_records_exactly_and_is_recounted_on_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { segment_bytes: 4096, ..Default::default() };
    let t0 = SystemTime::now();
    let before = {
        let spool = Spool::open(dir.path(), options.clone()).unwrap();
        let mut lane = spool.lane("w0").unwrap();
        for i in 0..60 {
            lane.append(&record(i)).unwrap();
        }
        let b = spool.backlog();
        assert_eq!(b.records, 60);
        assert_eq!(b.bytes, spool.usage().unacked_bytes);
        let oldest = b.oldest.expect("records wait");
        assert!(oldest >= t0 && oldest <= SystemTime::now(), "appended during this test: {oldest:?}");
        // The first segment whole (counted by its frame headers), then 3 frames of the second
        // (the caller says how many).
        let segs = segments(dir.path()).unwrap();
        let first = read_segment(&segs[0]).unwrap().records.len() as u64;
        spool.acknowledge(&segs[0], fs::metadata(&segs[0]).unwrap().len()).unwrap();
        assert_eq!(spool.backlog().records, 60 - first);
        let bytes = fs::read(&segs[1]).unwrap();
        let third = scan_frames(&bytes[8..], HEADER_LEN).frames[2].1;
        spool.acknowledge_records(&segs[1], third, 3).unwrap();
        assert_eq!(spool.backlog().records, 60 - first - 3);
        spool.remove_acknowledged(&segs[0]).unwrap();
        drop(lane);
        spool.backlog()
    };
    let again = Spool::open(dir.path(), options).unwrap();
    again.wait_recounted();
    let after = again.backlog();
    assert_eq!((after.records, after.bytes), (before.records, before.bytes));
    assert!(after.oldest.is_some_and(|t| t <= SystemTime::now()));
    // Everything acknowledged: nothing waits, and nothing is old.
    for seg in segments(dir.path()).unwrap() {
        again.acknowledge(&seg, fs::metadata(&seg).unwrap().len()).unwrap();
    }
    assert_eq!(again.backlog(), Backlog::default());
}

#[test]
fn a_set_aside_segment_leaves_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    {
        let mut lane = spool.lane("w0").unwrap();
        for i in 0..5 {
            lane.append(&record(i)).unwrap();
        }
    }
    let mut other = spool.lane("w1").unwrap();
    other.append(&record(9)).unwrap();
    let seg = segments(dir.path()).unwrap().remove(0);
    assert_eq!(spool.backlog().records, 6);
    spool.set_aside(&seg).unwrap();
    let b = spool.backlog();
    assert_eq!(b.records, 1, "the other lane's record still waits");
    assert_eq!(b.bytes, spool.usage().unacked_bytes);
}

#[test]
fn records_acknowledged_while_the_backlog_is_recounted_are_not_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let options = SpoolOptions { segment_bytes: 4096, ..Default::default() };
    {
        let spool = Spool::open(dir.path(), options.clone()).unwrap();
        let mut lane = spool.lane("w0").unwrap();
        for i in 0..60 {
            lane.append(&record(i)).unwrap();
        }
    }
    let segs = segments(dir.path()).unwrap();
    let first = read_segment(&segs[0]).unwrap().records.len() as u64;
    let again = Spool::open(dir.path(), options).unwrap();
    // Whether or not the recount has counted it yet, the first segment leaves the backlog once.
    again.acknowledge_records(&segs[0], fs::metadata(&segs[0]).unwrap().len(), first).unwrap();
    again.wait_recounted();
    assert_eq!(again.backlog().records, 60 - first);
    assert!(again.backlog().oldest.is_some());
    for seg in &segs[1..] {
        again.acknowledge(seg, fs::metadata(seg).unwrap().len()).unwrap();
    }
    assert_eq!(again.backlog(), Backlog::default());
}

#[test]
fn a_batch_is_written_whole_and_reads_back_in_order_with_single_appends() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    let written: Vec<Record> = (0..80).map(record).collect();
    lane.append(&written[0]).unwrap();
    let mut failed = 0;
    assert_eq!(lane.append_batch(&written[1..33], |_| failed += 1), 32);
    assert_eq!(lane.append_batch(std::iter::empty(), |_| failed += 1), 0);
    assert_eq!(lane.append_batch(&written[33..], |_| failed += 1), 47);
    assert_eq!(failed, 0);
    assert_eq!(read_all(dir.path()).unwrap(), written);
    let stats = spool.stats();
    assert_eq!(stats.records.load(Ordering::Relaxed), 80);
    let u = spool.usage();
    assert_eq!(stats.bytes.load(Ordering::Relaxed) + HEADER_LEN, u.disk_bytes, "every frame's bytes counted");
    assert_eq!(u.unacked_bytes + HEADER_LEN, u.disk_bytes);
    assert_eq!(spool.backlog().records, 80);
}

#[test]
fn a_batch_at_the_limit_writes_what_fits_and_reports_each_refused_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions { max_unacked_bytes: 20_000, ..Default::default() }).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    let batch: Vec<Record> = (0..400).map(record).collect();
    let mut refused = Vec::new();
    let written = lane.append_batch(&batch, |e| refused.push(e.kind()));
    assert!(written > 10 && written < 400, "{written} written");
    assert_eq!(refused.len(), 400 - written, "each record not written is reported once");
    assert!(refused.iter().all(|k| *k == io::ErrorKind::StorageFull));
    assert_eq!(read_all(dir.path()).unwrap(), batch[..written].to_vec(), "the records that fit, in order");
    assert_eq!(spool.stats().refused.load(Ordering::Relaxed), refused.len() as u64);
    assert_eq!(spool.stats().records.load(Ordering::Relaxed), written as u64);
    assert!(spool.usage().unacked_bytes <= 20_000);
}

#[test]
fn whole_frames_are_counted_up_to_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    let mut lane = spool.lane("w0").unwrap();
    // Each frame's end is taken from the buffer itself: a record made again would carry
    // another time, whose fraction of a second may print with fewer digits.
    let ends: Vec<u64> = (0..3)
        .map(|i| {
            lane.stage(&record(i)).unwrap();
            lane.buf.len() as u64
        })
        .collect();
    let (first, two, all) = (ends[0], ends[1], ends[2]);
    assert_eq!(lane.whole_frames_in(0), (0, 0));
    assert_eq!(lane.whole_frames_in(first - 1), (0, 0));
    assert_eq!(lane.whole_frames_in(first), (1, first));
    assert_eq!(lane.whole_frames_in(all - 1), (2, two));
    assert_eq!(lane.whole_frames_in(all), (3, all));
}
