//! Several capture files read as one stream (issue 18): rotated files in time order whatever
//! their names, calls that span files, files that overlap in time merged by packet time, calls
//! still open at the end reported as open (or finalized), and errors that name the file.

use std::path::{Path, PathBuf};

use tollgate_probe::analyze::{Analysis, analyze_set};
use tollgate_probe::capture_set::{CaptureSet, CaptureSetError, resolve_inputs, rotation_siblings};
use tollgate_probe::{AtEnd, CallReport, Probe};

const CALLER: [u8; 4] = [10, 0, 0, 1];
const PROXY: [u8; 4] = [10, 0, 0, 2];
/// 2026-09-21, in µs: a time like a real capture's.
const T0: i64 = 1_790_000_000_000_000;

fn probe() -> Probe {
    Probe::new(tollgate_probe::fuzzing::example_settings("set"))
}

/// A SIP message of call `id`: "INVITE", "BYE", or a status code for the INVITE.
fn sip(id: &str, what: &str) -> (Vec<u8>, bool) {
    let from_caller = matches!(what, "INVITE" | "BYE");
    let text = match what {
        "INVITE" => format!(
            "INVITE sip:4155550100@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:2125550001@10.0.0.1>;tag=a\r\nTo: <sip:4155550100@10.0.0.2>\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ),
        "BYE" => format!(
            "BYE sip:4155550100@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:2125550001@10.0.0.1>;tag=a\r\nTo: <sip:4155550100@10.0.0.2>;tag=b\r\nCall-ID: {id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
        ),
        code => format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 10.0.0.1\r\nFrom: <sip:2125550001@10.0.0.1>;tag=a\r\nTo: <sip:4155550100@10.0.0.2>;tag=b\r\nCall-ID: {id}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        ),
    };
    (text.into_bytes(), from_caller)
}

/// Writes a classic pcap (µs, Ethernet) of SIP messages `(ms after T0, call id, what)`.
fn write_pcap(path: &Path, messages: &[(i64, &str, &str)]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (ms, id, what) in messages {
        let (payload, from_caller) = sip(id, what);
        let (src, dst) = if from_caller { (CALLER, PROXY) } else { (PROXY, CALLER) };
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .udp(5060, 5060)
            .write(&mut frame, &payload)
            .unwrap();
        let ts = T0 + ms * 1000;
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    std::fs::write(path, out).unwrap();
}

/// Reads `inputs` as one set: the analysis and every call reported.
fn read(inputs: &[PathBuf], at_end: AtEnd) -> (Analysis, Vec<CallReport>, Probe) {
    let set = CaptureSet::open(&resolve_inputs(inputs).unwrap()).unwrap();
    let mut p = probe();
    let mut calls = Vec::new();
    let a = analyze_set(&set, &mut p, at_end, |c| calls.push(c), |_| {}).unwrap();
    (a, calls, p)
}

/// (call id, disposition, open) of each call, sorted.
fn outcomes(calls: &[CallReport]) -> Vec<(String, &'static str, bool)> {
    let mut v: Vec<_> =
        calls.iter().map(|c| (c.record.call_id.clone(), c.record.disposition.as_str(), c.open)).collect();
    v.sort();
    v
}

#[test]
fn a_call_spanning_two_rotated_files_is_one_call_and_open_at_the_end_of_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("cap.pcap");
    let second = dir.path().join("cap.pcap1");
    write_pcap(&first, &[(0, "span", "INVITE"), (1000, "span", "180")]);
    write_pcap(
        &second,
        &[(2000, "span", "200"), (2500, "busy", "INVITE"), (2600, "busy", "486"), (5000, "span", "BYE")],
    );

    let (a, calls, p) = read(&[dir.path().to_path_buf()], AtEnd::ReportOpen);
    assert_eq!(outcomes(&calls), [("busy".into(), "busy", false), ("span".into(), "answered", false)]);
    let span = calls.iter().find(|c| c.record.call_id == "span").unwrap();
    assert_eq!((span.record.pdd_ms, span.record.duration_ms), (Some(1000), Some(3000)), "times across the boundary");
    assert_eq!((p.counters().open, a.frames, a.files.len()), (0, 6, 2));
    assert!(a.files.iter().all(|f| !f.merged && !f.truncated));

    // The first file alone: the call goes on past its end, so it is open, not a no-answer.
    let (_, calls, p) = read(std::slice::from_ref(&first), AtEnd::ReportOpen);
    assert_eq!(outcomes(&calls), [("span".into(), "no_answer", true)]);
    assert_eq!((p.counters().open, p.counters().total_calls(), p.counters().finalized), (1, 0, 0));
    assert!(p.counters().calls.is_empty(), "{:?}", p.counters());
    // With --finalize it is closed there with its disposition so far (as before issue 18).
    let (_, calls, p) = read(std::slice::from_ref(&first), AtEnd::Finalize);
    assert_eq!(outcomes(&calls), [("span".into(), "no_answer", false)]);
    assert_eq!((p.counters().open, p.counters().total_calls(), p.counters().finalized), (0, 1, 1));
    // tcpdump -C's next file beside it is pointed out.
    assert_eq!(rotation_siblings(&first), [second]);
}

#[test]
fn files_are_read_in_the_order_of_their_first_packet_not_of_their_names() {
    // tcpdump -C names: cap.pcap, cap.pcap1 ... cap.pcap10, which sort by name as cap.pcap,
    // cap.pcap1, cap.pcap10, cap.pcap2 ... Call k's INVITE is in file k and its 486 in file
    // k+1, so a name order would see call 9's 486 (in cap.pcap10) before its INVITE.
    let dir = tempfile::tempdir().unwrap();
    let name = |k: usize| dir.path().join(if k == 0 { "cap.pcap".to_string() } else { format!("cap.pcap{k}") });
    for k in 0..=10usize {
        let id_prev = format!("call-{}", k.wrapping_sub(1));
        let id = format!("call-{k}");
        let mut messages = Vec::new();
        if k > 0 {
            messages.push((k as i64 * 1000, id_prev.as_str(), "486"));
        }
        if k < 10 {
            messages.push((k as i64 * 1000 + 500, id.as_str(), "INVITE"));
        }
        write_pcap(&name(k), &messages);
    }
    // Also a file that is not a capture: a directory's other files are skipped.
    std::fs::write(dir.path().join("notes.txt"), "rotated every 1000 packets").unwrap();

    let set = CaptureSet::open(&resolve_inputs(&[dir.path().to_path_buf()]).unwrap()).unwrap();
    let order: Vec<PathBuf> = set.files().iter().map(|f| f.path.clone()).collect();
    assert_eq!(order, (0..=10).map(name).collect::<Vec<_>>());
    let mut times = Vec::new();
    set.read(|f| times.push(f.ts_us), |_| {}).unwrap();
    assert_eq!(times.len(), 20);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    let (_, calls, p) = read(&[dir.path().to_path_buf()], AtEnd::ReportOpen);
    assert_eq!(calls.len(), 10);
    assert!(calls.iter().all(|c| c.record.disposition.as_str() == "busy" && !c.open), "{:?}", outcomes(&calls));
    assert_eq!((p.counters().open, p.tracker().stats().unknown_call), (0, 0));

    // The same through a glob, and given twice (a directory and a glob): each file once.
    let glob = dir.path().join("cap.pcap*");
    assert_eq!(resolve_inputs(std::slice::from_ref(&glob)).unwrap().len(), 11);
    assert_eq!(resolve_inputs(&[dir.path().to_path_buf(), glob]).unwrap().len(), 11);
}

#[test]
fn files_that_overlap_in_time_are_merged_by_packet_time() {
    // Two taps, each seeing part of the signalling.
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("tap-a.pcap");
    let b = dir.path().join("tap-b.pcap");
    write_pcap(&a, &[(0, "one", "INVITE"), (1500, "two", "486"), (3000, "three", "INVITE")]);
    write_pcap(&b, &[(500, "two", "INVITE"), (1000, "one", "486"), (3500, "three", "486")]);
    let set = CaptureSet::open(&[b.clone(), a.clone()]).unwrap();
    let mut times = Vec::new();
    let files = set.read(|f| times.push((f.ts_us - T0) / 1000), |_| {}).unwrap();
    assert_eq!(times, [0, 500, 1000, 1500, 3000, 3500]);
    assert!(files.iter().all(|f| f.merged && f.frames == 3), "{files:?}");
    let (_, calls, _) = read(&[a, b], AtEnd::ReportOpen);
    let expected = ["one", "three", "two"].map(|id| (id.to_string(), "busy", false));
    assert_eq!(outcomes(&calls), expected);
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("calls.pcap");
    std::fs::write(&text, "this is not a capture, it only has the name of one").unwrap();
    let e = CaptureSet::open(std::slice::from_ref(&text)).unwrap_err();
    assert!(matches!(e, CaptureSetError::Capture { .. }), "{e:?}");
    assert!(e.to_string().starts_with(&format!("{}: not a pcap or pcapng file", text.display())), "{e}");

    let missing = dir.path().join("gone.pcap");
    let e = resolve_inputs(std::slice::from_ref(&missing)).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: no such file or directory", missing.display()));
    let pattern = dir.path().join("rotated*.pcap");
    let e = resolve_inputs(std::slice::from_ref(&pattern)).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: no file matches this pattern", pattern.display()));
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = resolve_inputs(std::slice::from_ref(&empty)).unwrap_err();
    assert_eq!(e.to_string(), format!("{}: no pcap or pcapng file in this directory", empty.display()));
    assert!(matches!(resolve_inputs(&[]), Err(CaptureSetError::Nothing)));

    // A file cut short (the capture was copied while tcpdump wrote it) is read up to the cut,
    // and said to be cut.
    let good = dir.path().join("good.pcap");
    let cut = dir.path().join("cut.pcap");
    write_pcap(&good, &[(0, "c", "INVITE")]);
    write_pcap(&cut, &[(1000, "c", "486"), (2000, "d", "INVITE")]);
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (a, calls, _) = read(&[good.clone(), cut.clone()], AtEnd::ReportOpen);
    assert_eq!(outcomes(&calls), [("c".into(), "busy", false)]);
    assert!(a.truncated);
    let truncated: Vec<&Path> = a.files.iter().filter(|f| f.truncated).map(|f| f.path.as_path()).collect();
    assert_eq!(truncated, [cut.as_path()]);
}

/// Compresses `path` as tcpdump `-z gzip` does after each rotation (it runs `gzip FILE`):
/// `cap.pcap1` becomes `cap.pcap1.gz`. Returns the new path.
fn gzip(path: &Path) -> PathBuf {
    let out = std::process::Command::new("gzip").arg(path).output().expect("run gzip");
    assert!(out.status.success(), "gzip: {}", String::from_utf8_lossy(&out.stderr));
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

#[test]
fn rotated_files_compressed_by_gzip_read_as_the_same_calls() {
    // tcpdump -C ... -z gzip: every closed file is compressed, the newest one is still plain.
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("whole.pcap");
    let messages = [
        (0, "span", "INVITE"),
        (1000, "span", "180"),
        (1500, "busy", "INVITE"),
        (2000, "span", "200"),
        (2600, "busy", "486"),
        (3000, "late", "INVITE"),
        (5000, "span", "BYE"),
        (5500, "late", "603"),
    ];
    write_pcap(&plain, &messages);
    let (_, whole, _) = read(std::slice::from_ref(&plain), AtEnd::ReportOpen);
    assert_eq!(whole.len(), 3);

    let rotated = dir.path().join("rotated");
    std::fs::create_dir(&rotated).unwrap();
    write_pcap(&rotated.join("cap.pcap"), &messages[..3]);
    write_pcap(&rotated.join("cap.pcap1"), &messages[3..6]);
    write_pcap(&rotated.join("cap.pcap2"), &messages[6..]);
    let first = gzip(&rotated.join("cap.pcap"));
    gzip(&rotated.join("cap.pcap1"));
    // Something else compressed in the directory (a log) is skipped, as plain non-captures are.
    std::fs::write(rotated.join("probe.log"), "rotated every 1000 packets").unwrap();
    gzip(&rotated.join("probe.log"));

    for input in [rotated.clone(), rotated.join("cap.pcap*")] {
        let set = CaptureSet::open(&resolve_inputs(std::slice::from_ref(&input)).unwrap()).unwrap();
        let names: Vec<String> =
            set.files().iter().map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["cap.pcap.gz", "cap.pcap1.gz", "cap.pcap2"], "{}", input.display());
        let mut last_progress = 0;
        let mut frames = 0;
        set.read(|_| frames += 1, |p| last_progress = p).unwrap();
        assert_eq!(frames, messages.len());
        assert_eq!(last_progress, set.total_bytes(), "progress counts the files as stored");

        let (a, calls, p) = read(std::slice::from_ref(&input), AtEnd::ReportOpen);
        assert_eq!(outcomes(&calls), outcomes(&whole), "{}", input.display());
        let times = |c: &[CallReport]| {
            let mut t: Vec<_> =
                c.iter().map(|c| (c.record.call_id.clone(), c.record.pdd_ms, c.record.duration_ms)).collect();
            t.sort();
            t
        };
        assert_eq!(times(&calls), times(&whole));
        assert_eq!((p.counters().open, a.files.len()), (0, 3));
        assert!(a.files.iter().all(|f| !f.truncated && !f.merged), "{:?}", a.files);
    }

    // tcpdump -C's next files beside the first are pointed out, compressed or not.
    assert_eq!(rotation_siblings(&first), [rotated.join("cap.pcap1.gz"), rotated.join("cap.pcap2")]);

    // A compressed file cut short (copied while gzip wrote it) is read up to the cut, and said
    // to be cut; the other files are still read.
    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(&first, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let (a, _, _) = read(std::slice::from_ref(&rotated), AtEnd::ReportOpen);
    let truncated: Vec<&Path> = a.files.iter().filter(|f| f.truncated).map(|f| f.path.as_path()).collect();
    assert_eq!(truncated, [first.as_path()]);
    assert!(a.truncated);
    assert!(a.files[0].frames < 3 && a.files[1].frames == 3 && a.files[2].frames == 2, "{:?}", a.files);

    // One cut inside its gzip header (nothing decompressed yet) is an empty file that was cut.
    let stub = rotated.join("stub.pcap.gz");
    std::fs::write(&stub, &bytes[..6]).unwrap();
    let (a, calls, _) = read(std::slice::from_ref(&stub), AtEnd::ReportOpen);
    assert!(calls.is_empty());
    assert!(a.truncated && a.files[0].truncated && a.files[0].frames == 0, "{:?}", a.files);
    std::fs::remove_file(&stub).unwrap();

    // A compressed file that is not a capture, given by name, is refused naming it.
    let log = rotated.join("probe.log.gz");
    let e = CaptureSet::open(std::slice::from_ref(&log)).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: not a pcap or pcapng file", log.display())), "{e}");
}
