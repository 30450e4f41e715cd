//! The text of the configuration reference: every table of `tollgate.toml` and every option in
//! it, with its type, unit and description. Defaults are not written here: they are read from
//! the code (see [`super::defaults`]); the tests check that this list and the configuration
//! types hold the same fields.

use super::{Entry, Section};

/// An option that may be left out.
const fn opt(key: &'static str, ty: &'static str, unit: &'static str, about: &'static str) -> Entry {
    Entry { key, ty, unit, required: false, about }
}

/// An option that must be written when its table is.
const fn req(key: &'static str, ty: &'static str, unit: &'static str, about: &'static str) -> Entry {
    Entry { key, ty, unit, required: true, about }
}

/// Every table of the configuration, in the order of the reference.
pub const SECTIONS: &[Section] = &[
    Section {
        path: "",
        about: "Keys at the top of the file, before any table.",
        optional: false,
        entries: &[opt(
            "config_version",
            "integer",
            "",
            "The format the file is written in. A file without it is in the format of the release before \
             versions were written (1); `tollgate config migrate FILE` ports it and reports every change.",
        )],
    },
    Section {
        path: "node",
        about: "This server.",
        optional: false,
        entries: &[
            opt(
                "name",
                "string",
                "",
                "This server's name: the \"Device\" of its records in analytics. 1 to 64 characters, no control \
                 characters; `*` and `All` are reserved.",
            ),
            opt(
                "state_dir",
                "path",
                "",
                "Where installed policies, their history, users, tokens and the record spool live (relative: to \
                 the configuration file's directory).",
            ),
        ],
    },
    Section {
        path: "log",
        about: "The log on standard error (the journal, under systemd).",
        optional: false,
        entries: &[
            opt(
                "format",
                "`text` or `json`",
                "",
                "`text`: one line per event, coloured only when standard error is a terminal and `NO_COLOR` is \
                 not set. `json`: one JSON object per line with `timestamp`, `level`, `target`, `message` and the \
                 event's fields. `--log-format` and `TOLLGATE_LOG_FORMAT` win over it.",
            ),
            opt(
                "level",
                "string",
                "",
                "What is logged: `error`, `warn`, `info`, `debug`, `trace`, or a filter such as \
                 `info,tollgate_srp=debug`. `--log` and `TOLLGATE_LOG` win over it.",
            ),
        ],
    },
    Section {
        path: "dialing_plan",
        about: "How numbers are written in this network (the default is the North American Numbering Plan). \
                When the table is written, its required options must all be.",
        optional: false,
        entries: &[
            req("country_code", "string (digits)", "", "Country calling code of this network (`1`, `44`)."),
            opt(
                "national_prefix",
                "string (digits)",
                "",
                "National (trunk) prefix dialled before a national number (`1` in NANP, `0` in most of Europe); \
                 empty when the network has none.",
            ),
            req(
                "international_prefix",
                "string (digits)",
                "",
                "International prefix dialled before a country code (`011` in NANP, `00` in Europe).",
            ),
            req(
                "national_number_lengths",
                "list of integers",
                "digits",
                "Accepted lengths of a national significant number (10 in NANP).",
            ),
        ],
    },
    Section {
        path: "enum",
        about: "The ENUM server of the engine role (`serve`, `engine`).",
        optional: false,
        entries: &[
            opt(
                "listen_udp",
                "list of addresses (`host:port`)",
                "",
                "UDP listen addresses. With `[srp]` these are the service addresses and need fixed ports.",
            ),
            opt("listen_tcp", "list of addresses (`host:port`)", "", "TCP listen addresses."),
            opt("suffixes", "list of strings (DNS names)", "", "ENUM suffixes served; at least one."),
            opt("ttl", "integer", "s", "TTL of answers; 0: decisions are per call and must not be cached."),
            opt(
                "health_check_name",
                "string (DNS name)",
                "",
                "Answered with A 127.0.0.1 and TXT \"tollgate ok\" for load-balancer health checks.",
            ),
            opt(
                "source_edns_option",
                "integer",
                "",
                "EDNS0 option code carrying the calling party's URI (ENUM Source-URI, as Acme Packet / Oracle \
                 SBCs send it). Unset: EDNS options are ignored.",
            ),
            opt(
                "source_label_prefix",
                "string",
                "",
                "For SBCs that cannot add EDNS options: the calling number in a label in front of the suffix, \
                 `<reversed called digits>.<prefix><calling digits>.e164.arpa.`; empty disables.",
            ),
            opt(
                "source_label_numbers",
                "`e164` or `dialing-plan`",
                "",
                "How the calling digits of that label are read: E.164 digits without `+` (`src-442079460000`), or \
                 as dialled, through the dialing plan.",
            ),
            opt("no_record", "`nxdomain` or `nodata`", "", "How a \"no-record\" answer is sent."),
            opt(
                "udp_workers",
                "integer",
                "",
                "UDP receive tasks per listen address; 0: one per CPU. Each writes its own spool lane.",
            ),
            opt(
                "udp_reuseport",
                "boolean",
                "",
                "Each UDP receive task reads its own socket (`SO_REUSEPORT`; the kernel spreads clients by address \
                 and port); false: the tasks share one socket and whichever is free reads the next batch (faster on \
                 few cores). An address already in use by another process is refused either way.",
            ),
            opt("tcp_idle_timeout_secs", "integer", "s", "An idle ENUM TCP connection is closed after this."),
            opt(
                "stale_after_ms",
                "integer",
                "ms",
                "An answer sent more than this long after the kernel received its query is recorded as stale \
                 (alarm 72009 STALE_ANSWERS); keep it above the SBCs' timeout.",
            ),
            opt(
                "tcp_max_connections",
                "integer",
                "",
                "ENUM TCP connections served at once per listener, from all sources; more are closed at once and \
                 counted.",
            ),
            opt(
                "tcp_max_connections_per_source",
                "integer",
                "",
                "ENUM TCP connections served at once per listener from one source address.",
            ),
            opt(
                "tcp_max_connection_secs",
                "integer",
                "s",
                "A TCP connection is closed after this (after the answer in progress), however busy, so no client \
                 keeps its slot forever.",
            ),
        ],
    },
    Section {
        path: "enum.naptr",
        about: "Fixed fields of every NAPTR answer.",
        optional: false,
        entries: &[
            opt("order", "integer", "", "NAPTR order."),
            opt("preference", "integer", "", "NAPTR preference."),
            opt("flags", "string", "", "NAPTR flags (`u`: the result is a URI)."),
            opt("service", "string", "", "ENUM service."),
        ],
    },
    Section {
        path: "enum.answers",
        about: "How each action is answered: `{ kind = \"no-record\" }` (the SBC routes normally) or \
                `{ kind = \"naptr\", uri = TEMPLATE }` (one NAPTR record rewriting the request URI). Placeholders \
                of a template: `{dest}` `{dest_digits}` `{source}` `{source_digits}` `{target}` `{target_digits}` \
                `{intercept}` `{cause}` `{rule}`. When the table is written, all five must be.",
        optional: false,
        entries: &[
            req("allow", "answer", "", "Calls the policy allows."),
            req("terminate", "answer", "", "Calls terminated to an intercept destination."),
            req("reject", "answer", "", "Calls rejected with a cause."),
            req("redirect", "answer", "", "Calls redirected to a number."),
            req("redirect_uri", "answer", "", "Calls redirected to a SIP URI."),
        ],
    },
    Section {
        path: "enum.intercepts",
        about: "Intercept destinations by name: `NAME = \"sip:...\"`; a `terminate` rule names one with \
                `intercept = \"NAME\"` (default `default`), inserted as `{intercept}`.",
        optional: false,
        entries: &[opt("default", "string (SIP URI)", "", "The intercept destination of rules that name none.")],
    },
    Section {
        path: "enum.soa",
        about: "The SOA sent in the authority section of negative answers.",
        optional: false,
        entries: &[
            opt("mname", "string (DNS name)", "", "Primary name server."),
            opt("rname", "string (DNS name)", "", "Responsible mailbox, in DNS form."),
            opt("negative_ttl", "integer", "s", "Negative-caching TTL (the SOA minimum)."),
        ],
    },
    Section {
        path: "enum.devices[]",
        about: "Known SBCs, named in records and metrics by the address they query from (none by default).",
        optional: true,
        entries: &[
            req("name", "string", "", "The device's name in records and metrics."),
            req("addresses", "list of networks (`10.0.0.5/32`)", "", "Addresses or networks it queries from."),
        ],
    },
    Section {
        path: "sip_redirect",
        about: "The SIP redirect server of the engine role (`serve`, `engine`): SBCs and softswitches that do not \
                speak ENUM send the call's INVITE and follow the answer (a 3xx or a final error), decided by the same \
                policy as ENUM queries and recorded in the ENUM dataset. No listen address (the default): no server.",
        optional: false,
        entries: &[
            opt(
                "listen_udp",
                "list of addresses (`host:port`)",
                "",
                "UDP listen addresses. With `[srp]` these are service addresses (bound only by the Active) and need \
                 fixed ports. `enum.udp_workers` and `enum.udp_reuseport` apply to them too.",
            ),
            opt(
                "listen_tcp",
                "list of addresses (`host:port`)",
                "",
                "TCP listen addresses (service addresses with `[srp]`).",
            ),
            opt(
                "listen_tls",
                "list of addresses (`host:port`)",
                "",
                "SIP over TLS listen addresses (service addresses with `[srp]`): the TCP server over TLS 1.2 or 1.3, \
                 presenting `[tls] cert` (reloaded with it; needs `[tls]`), asking no client certificate (clients are \
                 told apart by address, as over TCP). SBCs must trust `[tls] ca`. The `tcp_*` limits apply to each; a \
                 handshake not finished within `tcp_idle_timeout_secs` closes the connection.",
            ),
            opt(
                "max_message_bytes",
                "integer",
                "bytes",
                "Largest SIP message accepted (1024 to 65535): a larger datagram is dropped unanswered and counted; a \
                 TCP connection sending a larger message, or a head this long without its empty line, is closed.",
            ),
            opt(
                "tcp_idle_timeout_secs",
                "integer",
                "s",
                "A TCP connection without a whole message for this long (silent, or sending too slowly) is closed.",
            ),
            opt(
                "tcp_max_connections",
                "integer",
                "",
                "SIP TCP connections served at once per listener, from all sources; more are closed at once and \
                 counted.",
            ),
            opt(
                "tcp_max_connections_per_source",
                "integer",
                "",
                "SIP TCP connections served at once per listener from one source address (at most \
                 `tcp_max_connections`).",
            ),
            opt(
                "tcp_max_connection_secs",
                "integer",
                "s",
                "A TCP connection is closed after this (after the answer in progress), however busy.",
            ),
            opt(
                "answer_strangers",
                "boolean",
                "",
                "Whether a request from an address in no `[[sip_redirect.clients]]` is answered 403 Forbidden over UDP \
                 too (the ClearIP convention). Off (the default): over UDP it is dropped unanswered and counted \
                 (`tollgate_sip_redirect_forbidden_total`), since a UDP source can be forged and a 403 is larger than \
                 the request; over TCP a stranger's connection is closed at accept \
                 (`tollgate_sip_redirect_tcp_refused_total{reason=\"not_client\"}`). On: 403 over UDP, and over TCP \
                 403 to its first request, then the connection is closed.",
            ),
            opt(
                "retransmission_window_secs",
                "integer",
                "s",
                "How long an INVITE's answer is kept to be sent again, byte for byte, to a retransmission of that \
                 INVITE (same top Via branch, Call-ID, CSeq and sender), which is neither decided, counted by velocity \
                 rules nor recorded again; also how long a CANCEL of it gets 200. 1 to 300; 32 is 64*T1 (RFC 3261 \
                 timer B).",
            ),
            opt(
                "retransmission_entries",
                "integer",
                "",
                "Most INVITE answers kept for retransmissions; the oldest is forgotten first, and counted (its \
                 retransmission would be decided and recorded again). Keep it at least retransmission_window_secs x the \
                 peak INVITE rate: the default 320,000 covers 10,000 INVITE/s for 32 s. 1 to 10,000,000.",
            ),
            opt(
                "retransmission_max_mb",
                "integer",
                "MiB",
                "Most memory the answers kept for retransmissions take with their keys (an answer is typically 0.5 to \
                 0.7 KiB); the oldest is forgotten first when over. 1 to 4096; the default 256 holds the default \
                 320,000 entries of typical answers.",
            ),
        ],
    },
    Section {
        path: "sip_redirect.answers",
        about: "The answer to each kind of decision: `{ kind = \"redirect\", code = 300-399 (default 302), contact = \
                TEMPLATE }` or `{ kind = \"final\", code = 400-699, reason = true }` (for `reject` the code may be \
                left out: the policy's cause is sent; `reason` adds `Reason: SIP ;cause=CODE ;text=\"RULE\"`). \
                Placeholders: those of `[enum.answers]` plus `{ruri}` (the Request-URI as sent) and `{ruri_host}` \
                (its host and port). An answer left out keeps its default.",
        optional: false,
        entries: &[
            opt("allow", "answer", "", "Calls the policy allows (default: 302 to `{ruri}`)."),
            opt(
                "terminate",
                "answer",
                "",
                "Calls terminated to an intercept destination (default: 302 to `{intercept}`).",
            ),
            opt(
                "reject",
                "answer",
                "",
                "Calls rejected with a cause (default: that final response, with a Reason header).",
            ),
            opt(
                "redirect",
                "answer",
                "",
                "Calls redirected to a number (default: 302 to `sip:{target}@{ruri_host};user=phone`).",
            ),
            opt("redirect_uri", "answer", "", "Calls redirected to a SIP URI (default: 302 to `{target}`)."),
        ],
    },
    Section {
        path: "sip_redirect.clients[]",
        about: "The SBCs, softswitches and PBXs allowed to ask, by source address. Any other address gets no \
                decision and no record: over UDP its request is dropped, over TCP its connection is closed at \
                accept (or it is answered 403 Forbidden, with `answer_strangers`). Default: one client, `loopback` \
                (127.0.0.0/8 and ::1/128); writing the table replaces it.",
        optional: true,
        entries: &[
            req("name", "string", "", "The client's name in records (`client`) and logs."),
            req("addresses", "list of networks (`10.0.0.5/32`)", "", "Addresses or networks it sends from."),
            opt(
                "allow",
                "answer",
                "",
                "This client's own answer to allowed calls (e.g. `{ kind = \"final\", code = 404 }` for an SBC that continues routing on 404); without it, `[sip_redirect.answers]`'s.",
            ),
            opt(
                "terminate",
                "answer",
                "",
                "This client's own answer to calls terminated to an intercept; without it, `[sip_redirect.answers]`'s.",
            ),
            opt(
                "reject",
                "answer",
                "",
                "This client's own answer to rejected calls; without it, `[sip_redirect.answers]`'s.",
            ),
            opt(
                "redirect",
                "answer",
                "",
                "This client's own answer to calls redirected to a number; without it, `[sip_redirect.answers]`'s.",
            ),
            opt(
                "redirect_uri",
                "answer",
                "",
                "This client's own answer to calls redirected to a URI; without it, `[sip_redirect.answers]`'s.",
            ),
        ],
    },
    Section {
        path: "api",
        about: "The HTTP API and web UI.",
        optional: false,
        entries: &[
            opt("listen", "address (`host:port`)", "", "Listen address of the API and web UI."),
            opt(
                "token",
                "string",
                "",
                "When set, an extra admin bearer token for API changes (`Authorization: Bearer <token>`); unset: \
                 only the tokens of `tollgate token`.",
            ),
            opt(
                "max_connections",
                "integer",
                "",
                "Most HTTP connections open at once on each HTTP listener of the process (this API and UI, \
                 `tollgate manager`, `tollgate agent`), 1 to 1000000; more are answered 503 and closed, and \
                 CONNECTION_LIMIT is raised.",
            ),
            opt(
                "idle_timeout",
                "duration",
                "",
                "A connection making no progress this long is closed (idle between requests, unfinished headers, \
                 a stalled body), 1 s to 1 day. Before config_version 2: `idle_timeout_secs`, seconds.",
            ),
            opt(
                "console",
                "URL",
                "",
                "The manager console that manages this server (`https://manager.example.net:8080`). When set, this \
                 server's web UI is read-only (Dashboard, Analytics, Alarms, the policy in force and its history) \
                 and links to the console, where policies change for every engine cluster at once; the API is \
                 unchanged (the manager installs through it). Unset: the full local UI (a server on its own).",
            ),
        ],
    },
    Section {
        path: "tls",
        about: "TLS on every link. With `cert`, `key` and `ca`: the web UI and API, ingest, `tollgate manager` and \
                `tollgate agent` speak HTTPS, and the links between servers (manager to agents and to its mate, \
                shipper to collector, the SRP link) use mutual TLS: each side's certificate must be of `ca` and name \
                a role the link accepts. Make them with `tollgate pki init` and `tollgate pki issue`. Certificates \
                are reloaded without a restart, on SIGHUP and when the files change. Without `[tls]`, plain HTTP is \
                served on loopback addresses only.",
        optional: false,
        entries: &[
            opt("ca", "path", "", "The CA certificate (PEM) peers' certificates must chain to; required with `cert`."),
            opt("cert", "path", "", "This server's certificate (PEM); unset: no TLS."),
            opt("key", "path", "", "The private key of `cert` (PEM, mode 0600); required with `cert`."),
            opt(
                "allow_plaintext",
                "boolean",
                "",
                "Serve plain HTTP on non-loopback addresses when TLS is not configured (warned at start); off: \
                 such a listener refuses to start.",
            ),
            opt(
                "require_client_certificates",
                "boolean",
                "",
                "Also require a client certificate of `ca` on the web UI and API (people then need an `operator` \
                 certificate); machine links always require one.",
            ),
            opt(
                "reload_interval",
                "duration",
                "",
                "How often the certificate files are checked for a rotation (SIGHUP reloads at once), 1 s to 1 \
                 day. Also read as `reload_interval_secs`, seconds.",
            ),
            opt(
                "expiry_warning",
                "duration",
                "",
                "Alarm TLS_CERT_EXPIRING is raised when the certificate expires within this time, 1 to 365 days. \
                 Also read as `expiry_warning_secs`, seconds.",
            ),
        ],
    },
    Section {
        path: "spool",
        about: "The local record spool: every answered query and probed call is written here first, then shipped \
                to the collector; only what the collector acknowledged is deleted.",
        optional: false,
        entries: &[
            opt("dir", "path", "", "The spool directory; unset: `<state_dir>/spool`."),
            opt(
                "segment_mb",
                "integer",
                "MiB",
                "Each lane (per UDP socket and worker, TCP listener, probe) writes segments of up to this size, 1 \
                 to 1024.",
            ),
            opt("fsync_ms", "integer", "ms", "Interval between fsyncs of the spool; above 0."),
            opt(
                "max_disk_mb",
                "integer",
                "MiB",
                "Most records not yet acknowledged by the collector; 0: no limit. At the limit new records are \
                 refused (calls are still answered) and SPOOL_FULL is raised.",
            ),
            opt(
                "near_full_percent",
                "integer",
                "%",
                "SPOOL_NEAR_FULL is raised above this share of `max_disk_mb`, 1 to 100.",
            ),
            opt(
                "late_after_secs",
                "integer",
                "s",
                "Alarm 72015 RECORDS_LATE is raised while the oldest record not yet acknowledged by the collector \
                 is older than this (analytics lag behind the calls), and cleared once none is; 0: never.",
            ),
        ],
    },
    Section {
        path: "shipper",
        about: "Where the spool's records go.",
        optional: false,
        entries: &[
            opt(
                "collector",
                "string (URL)",
                "",
                "The collector's API. Empty: this process's own API when it runs the collector (`serve`); an \
                 engine without a collector keeps its records in the spool.",
            ),
            opt(
                "collectors",
                "list of strings (URLs)",
                "",
                "Several collectors' APIs, instead of `collector` (setting both is an error): batches are spread \
                 over the healthy ones, several in flight; a collector that fails is skipped and retried with \
                 backoff (1 s, doubling to 30 s). All down: records stay in the spool (COLLECTOR_UNREACHABLE).",
            ),
            opt(
                "token",
                "string",
                "",
                "Ingest token (`tollgate token create NAME --role ingest`); empty: read `<state_dir>/ingest-token`.",
            ),
            opt("batch_records", "integer", "records", "Most records per batch sent to the collector."),
            opt(
                "in_flight",
                "integer",
                "batches",
                "Batches in flight to each collector at once (pipelining), 1 to 16. A segment's acknowledged \
                 offset moves only past a contiguous run of acknowledged batches, so a crash re-sends only what \
                 was not acknowledged in order.",
            ),
            opt(
                "compression",
                "string",
                "",
                "`zstd`: compress batches (`Content-Encoding: zstd`) for collectors that answer \
                 `Accept-Encoding: zstd`; the first batch after a connection failure goes uncompressed. `none`: \
                 never compress.",
            ),
        ],
    },
    Section {
        path: "probe",
        about: "The SIP meta-data probe (`serve`, `probe`): SIP from a tap, a mirror port or HEP becomes call \
                records.",
        optional: false,
        entries: &[
            opt("device", "string", "", "The probe's name in records; empty: `node.name`."),
            opt(
                "internal",
                "list of strings",
                "",
                "Internal number ranges, which decide call direction: `+1212555*` prefixes or \
                 `+12125550000-+12125550999` spans.",
            ),
            opt(
                "trunks",
                "list of networks",
                "",
                "Carrier trunk networks: INVITEs from them are inbound, to them outbound.",
            ),
            opt(
                "source",
                "`pai-then-from` or `from`",
                "",
                "Where the caller's number is read: P-Asserted-Identity, else From; or From only.",
            ),
            opt("destination", "`request-uri` or `to`", "", "Where the called number is read."),
            opt("mirror", "list of addresses", "", "UDP addresses receiving mirrored SIP datagrams."),
            opt("hep_udp", "list of addresses", "", "HEP v2/v3 over UDP (Kamailio siptrace, OpenSIPS, heplify)."),
            opt("hep_tcp", "list of addresses", "", "HEP v2/v3 over TCP."),
            opt(
                "hep_tcp_max_connections",
                "integer",
                "",
                "Most HEP/TCP senders connected at once, per `hep_tcp` address, 1 to 1000000.",
            ),
            opt(
                "hep_tcp_idle_timeout",
                "duration",
                "",
                "A HEP/TCP sender that sends nothing this long is disconnected. Before config_version 2: \
                 `hep_tcp_idle_timeout_secs`, seconds.",
            ),
            opt(
                "udp_receive_buffer_mb",
                "integer",
                "MiB",
                "Receive buffer of each UDP socket (mirror, HEP), 1 to 1024: room for a burst while the probe \
                 works. Set with SO_RCVBUFFORCE as root, else SO_RCVBUF, which the kernel caps at \
                 `net.core.rmem_max`; the grant is logged and exported as \
                 `tollgate_probe_udp_receive_buffer_bytes`.",
            ),
            opt(
                "interface",
                "string",
                "",
                "A network interface to capture from through libpcap (build feature `live-capture`, needs root); \
                 empty: none.",
            ),
            opt(
                "filter",
                "string (BPF)",
                "",
                "Capture filter for `interface`, in tcpdump's syntax, applied in the kernel (what it excludes costs \
                 nothing); empty: every frame. A filter that does not compile stops the start, naming it.",
            ),
            opt(
                "capture_buffer_mb",
                "integer",
                "MiB",
                "libpcap's kernel buffer for `interface` (1 to 2047): what a burst may fill while the probe is busy; \
                 packets beyond it are dropped by the kernel and counted in `tollgate_probe_kernel_drops_total`.",
            ),
            opt(
                "max_open_calls",
                "integer",
                "calls",
                "Most calls tracked at once; beyond it the least recently active is closed.",
            ),
            opt(
                "setup_timeout",
                "duration",
                "",
                "An unanswered call is closed as no answer after this. Before config_version 2: \
                 `setup_timeout_secs`, seconds.",
            ),
            opt(
                "idle_timeout",
                "duration",
                "",
                "An answered call without a message this long is closed. Before config_version 2: \
                 `idle_timeout_secs`, seconds.",
            ),
            opt(
                "mos_poor",
                "number",
                "MOS",
                "A call with an RTP stream whose estimated MOS (1 to 4.5, from loss and jitter: README, The SIP \
                 probe) is below this counts as of poor quality (`tollgate_probe_poor_quality_calls_total`), 1.0 to \
                 4.5.",
            ),
            opt(
                "ladder_calls",
                "integer",
                "calls",
                "Finished calls whose SIP messages are kept for their ladder (`GET \
                 /api/v1/probe/calls/{call_id}/messages`), the most recent, besides the open calls; 0 keeps \
                 none. Up to 1,000,000.",
            ),
            opt(
                "ladder_max_mb",
                "integer",
                "MiB",
                "Memory for the kept messages (4 KiB of text per message, 200 messages per call); past it the \
                 oldest calls go first, finished before open (`tollgate_probe_ladder_calls_dropped_total`). 1 to \
                 65,536.",
            ),
            opt(
                "tcp_max_flows",
                "integer",
                "flows",
                "SIP over TCP: most flows (one per direction of a connection) reassembled at once; past it the least \
                 recently active is evicted (`tollgate_probe_tcp_flows_evicted_total`). 16 to 16,777,216.",
            ),
            opt(
                "tcp_max_flow_kb",
                "integer",
                "KiB",
                "SIP over TCP: most bytes held per flow (a partial message and out-of-order segments), which is also \
                 the largest message reassembled; a larger one is dropped and counted \
                 (`tollgate_probe_tcp_oversized_total`). 1 to 65,536, and at most `tcp_max_total_mb`.",
            ),
            opt(
                "tcp_max_total_mb",
                "integer",
                "MiB",
                "SIP over TCP: most bytes held by all flows together; past it the least recently active flows are \
                 evicted. 1 to 65,536.",
            ),
        ],
    },
    Section {
        path: "collector",
        about: "The record store of the collector role (`serve`, `collector`).",
        optional: false,
        entries: &[
            opt(
                "store",
                "string (URL)",
                "",
                "`sqlite:PATH` or `postgres://user:password@host/db`; empty: `sqlite:<state_dir>/records.db`. \
                 PostgreSQL over TLS with libpq's `sslmode` (`disable`, `prefer` (default), `require`, `verify-ca`, \
                 `verify-full`): `?sslmode=verify-full&sslrootcert=/etc/tollgate/pg-ca.pem`, a client certificate \
                 with `&sslcert=...&sslkey=...` (absolute paths). A store on another machine without \
                 `verify-full` is warned about at start.",
            ),
            opt(
                "maintenance_interval",
                "duration",
                "",
                "Time between retention runs and statistics refreshes. Before config_version 2: \
                 `maintenance_minutes`, minutes.",
            ),
            opt(
                "quarantine_max_mb",
                "integer",
                "MiB",
                "Most disk the quarantine of received lines that are not valid records may use; 0: no limit. When \
                 full, such batches are refused with 507 (alarm 72007 QUARANTINE_FULL).",
            ),
            opt(
                "sqlite_cache_mb",
                "integer",
                "MiB",
                "Page cache of a SQLite store's writing connection (1 to 65536); its reading connection keeps half \
                 as much. SQLite fills its caches under ingest and keeps them, so 1.5 times this is most of the \
                 memory the store holds (the collector's memory beside the engine's). Smaller: less memory, slower \
                 ingest (32 stored about 40 % fewer records/s than 128). Unused with PostgreSQL.",
            ),
        ],
    },
    Section {
        path: "collector.retention",
        about: "How long data is kept (0: forever).",
        optional: false,
        entries: &[
            opt("raw_days", "integer", "days", "Raw records."),
            opt("minute_days", "integer", "days", "Per-minute rollups."),
            opt("hour_days", "integer", "days", "Per-hour rollups."),
            opt("day_days", "integer", "days", "Per-day rollups."),
        ],
    },
    Section {
        path: "shared_counters",
        about: "Velocity counts and calls in progress shared by every engine and probe naming the same Redis (or \
                Valkey) and namespace, so `velocity` and `concurrent` rules count a caller's calls network-wide. \
                Engines count locally and exchange batches every `interval`: a decision misses at most the calls \
                other engines counted in about the last two intervals. Redis unreachable: each engine counts its \
                own calls, alarm 72016 SHARED_COUNTERS_UNREACHABLE is raised, and the calls counted meanwhile are \
                sent when it returns.",
        optional: false,
        entries: &[
            opt(
                "url",
                "string",
                "",
                "`redis://[:password@]host:port[/db]`, or `rediss://` for TLS (Redis's certificate checked against \
                 `[tls] ca`; `[tls] cert` and `key` presented for `tls-auth-clients`). Plain `redis://` only to a \
                 loopback address unless `[tls] allow_plaintext`. Empty: counters are per engine process.",
            ),
            opt(
                "sentinels",
                "list of addresses (`host:port`)",
                "",
                "Redis Sentinel addresses (`host:port`, TLS when `url` is `rediss://`): the Redis used is the \
                 master they name `sentinel_master`, asked again on every reconnection, so a failover is followed. \
                 `url`'s password (also sent to the sentinels) and database apply; its host is not used.",
            ),
            opt(
                "sentinel_master",
                "string",
                "",
                "The master's name in the sentinels' configuration (`sentinel monitor NAME ...`).",
            ),
            opt(
                "namespace",
                "string",
                "",
                "Prefix of the Redis keys (the stream `<namespace>:events`): engines and probes with the same Redis \
                 and namespace count together. One per engine cluster, or one for several clusters.",
            ),
            opt(
                "interval",
                "duration",
                "ms",
                "How often the calls counted here are sent and the others' read (5 ms to 1 s). Shorter: a tighter \
                 bound, more Redis round trips.",
            ),
            opt(
                "history",
                "duration",
                "s",
                "How long batches stay in Redis, and how far back an engine that starts or reconnects reads (at \
                 least the longest velocity window in the policy).",
            ),
            opt(
                "probe_ttl",
                "duration",
                "s",
                "A probe not heard from for this long is forgotten with its calls in progress (a probe sends its \
                 calls in progress in full every half of it).",
            ),
            opt(
                "timeout",
                "duration",
                "ms",
                "The longest one exchange (or a connection attempt) with Redis may take before it counts as \
                 unreachable. It never delays an answer: exchanges run beside the answer path.",
            ),
            opt(
                "max_pending",
                "integer",
                "calls",
                "Calls counted while Redis is unreachable, kept to be sent when it returns; beyond it the oldest are \
                 dropped (tollgate_shared_counters_dropped_events_total).",
            ),
        ],
    },
    Section {
        path: "service_address",
        about: "How an SRP pair of engines moves the ENUM service address (`enum.listen_*`) between them.",
        optional: false,
        entries: &[
            opt(
                "mode",
                "`bind` or `ip`",
                "",
                "`bind`: the address is always present (one host, loopback, or an SBC that lists both engines); \
                 `ip`: it is added to `interface` on the Active (with gratuitous ARP) and removed on the Standby \
                 (needs CAP_NET_ADMIN).",
            ),
            opt("interface", "string", "", "The interface the address moves on; needed with `mode = \"ip\"`."),
            opt(
                "prefix_len",
                "integer",
                "bits",
                "Prefix length of the address on the interface (mode `ip`); unset: 32 for IPv4, 128 for IPv6.",
            ),
        ],
    },
    Section {
        path: "srp",
        about: "An engine that is one chassis of an SRP active/standby pair. Absent: the engine serves alone. \
                Both chassis: the same `shared_key` and settings; each its own `node_id`, `bind_address` and \
                `peer_address`.",
        optional: true,
        entries: &[
            req(
                "node_id",
                "string",
                "",
                "This chassis' id, unique in the pair (at most 64 bytes); the last election tie-break (the greater \
                 wins).",
            ),
            req("peer_address", "address (`host:port`)", "", "The mate's SRP address."),
            req(
                "bind_address",
                "address (`host:port`)",
                "",
                "This chassis' own SRP address; a concrete address, not 0.0.0.0.",
            ),
            req(
                "shared_key",
                "string",
                "",
                "Authenticates every SRP frame (HMAC-SHA256); at least 16 bytes, the same on both chassis.",
            ),
            req("chassis_mode", "`primary` or `backup`", "", "The role preferred at initialisation."),
            req("priority", "integer", "", "1 to 255; the lower number is the higher priority."),
            opt(
                "hello_interval_ms",
                "integer",
                "ms",
                "Time between Hello messages (at least 10; 100 with `dead_interval_ms = 300` fails over in well \
                 under a second).",
            ),
            opt(
                "dead_interval_ms",
                "integer",
                "ms",
                "Without a Hello this long the mate is dead; at least 3 x `hello_interval_ms`.",
            ),
            opt("delay_interval_secs", "integer", "s", "Wait after start-up before the dead interval starts running."),
            opt(
                "guard_period_secs",
                "integer",
                "s",
                "After a switchover or a local recovery, a monitor failure does not switch over at once for this \
                 long.",
            ),
            opt(
                "damping_period_secs",
                "integer",
                "s",
                "How long a monitor failure inside the guard period must last to switch over; 0: wait for the end \
                 of the guard period.",
            ),
        ],
    },
    Section {
        path: "srp.checkpoint",
        about: "What is checkpointed to the Standby, and when.",
        optional: true,
        entries: &[
            opt(
                "periodic_interval_mins",
                "integer",
                "min",
                "Time between full (macro) checkpoints: 30 to 1440, divisible by 15.",
            ),
            opt(
                "delay_secs",
                "integer",
                "s",
                "Only sessions at least this old are checkpointed; 0: every session at once (velocity counters \
                 need it, and a probe pair's calls: one younger than this is lost at a failover).",
            ),
            opt(
                "compression",
                "`zlib` or `lz4`",
                "",
                "Checkpoint compression; LZ4 is used only when both chassis ask for it.",
            ),
        ],
    },
    Section {
        path: "srp.checkpoint.nack",
        about: "NACKs of checkpoints that fail to apply.",
        optional: true,
        entries: &[
            opt("micro", "boolean", "", "Send a NACK when a micro-checkpoint fails to apply."),
            opt("macro", "boolean", "", "Send a NACK when a full (macro) checkpoint fails to apply."),
            opt("max_response", "integer", "NACKs", "Most NACKs sent within one 10-minute window, 0 to 65535."),
        ],
    },
    Section {
        path: "srp.audit",
        about: "The audit comparing the Standby's copy of the sessions with the Active's.",
        optional: true,
        entries: &[
            opt("daily_start_time", "string (`HH:MM`)", "", "The first audit of the day (24-hour clock)."),
            opt("periodicity_mins", "integer", "min", "Time between audits from the start time, 60 to 1440."),
        ],
    },
    Section {
        path: "srp.monitor[]",
        about: "Monitor groups: the Active switches over when every target of a group is down.",
        optional: true,
        entries: &[
            req(
                "kind",
                "`aaa`, `bgp` or `diameter`",
                "",
                "What the targets are: RADIUS servers, BGP (TCP) peers, Diameter peers.",
            ),
            opt("group", "integer", "", "Group number within the kind."),
            req(
                "targets",
                "list of strings (`host:port`)",
                "",
                "At least one, no duplicates (default ports: AAA 1812, BGP 179, Diameter 3868).",
            ),
            opt("interval_ms", "integer", "ms", "Time between probes of each target."),
            opt("timeout_ms", "integer", "ms", "How long to wait for a probe's answer."),
            opt("max_retries", "integer", "", "Failed probes in a row before a target is down."),
            opt("secret", "string", "", "AAA: the RADIUS shared secret."),
            opt(
                "probe_user",
                "string",
                "",
                "AAA: the user name of the authentication probe (a reject is an answer too).",
            ),
            opt("origin_host", "string", "", "Diameter: this chassis' Origin-Host; empty: `tollgate.srp`."),
        ],
    },
    Section {
        path: "agent",
        about: "A server's agent (`tollgate agent`): runs the server's role from the release in force and carries \
                out the manager's upgrade actions.",
        optional: true,
        entries: &[
            req("listen", "address (`host:port`)", "", "The agent's API (the manager calls it)."),
            req("server", "string", "", "This server's name in the manager's topology."),
            req(
                "app_type",
                "`manager`, `engine`, `probe` or `collector`",
                "",
                "The application type of the bundles it accepts.",
            ),
            req("role", "`engine`, `probe`, `collector`, `manager` or `serve`", "", "The role process it runs."),
            req("role_config", "path", "", "The role's configuration file."),
            req("dir", "path", "", "Releases, staged bundles, backups and the role's log (owner only)."),
            req(
                "trusted_keys",
                "list of strings (hex)",
                "",
                "ed25519 public keys whose bundle signatures are trusted (`tollgate release keygen` prints one); \
                 at least one.",
            ),
            req(
                "token",
                "string",
                "",
                "Bearer token the manager presents (the manager's `agent_token`); at least 16 characters.",
            ),
            opt(
                "max_bundle_mb",
                "integer",
                "MiB",
                "The largest release bundle it accepts (streamed to disk), 1 to 4096.",
            ),
            opt(
                "max_role_request_mb",
                "integer",
                "MiB",
                "The largest request it passes on to the role's API (a policy the manager pushes), 1 to 4096.",
            ),
        ],
    },
    Section {
        path: "manager",
        about: "The manager (`tollgate manager`): the topology it holds, its release bundles and its mate in the \
                manager pair.",
        optional: true,
        entries: &[
            req(
                "hostname",
                "string",
                "",
                "This manager's server name in the topology (a server of a manager cluster).",
            ),
            opt(
                "mate",
                "string (URL)",
                "",
                "The other manager of the pair (its API URL): the standby follows it and takes over when it stops \
                 answering; unset: no pair.",
            ),
            opt("starts_active", "boolean", "", "This manager is the active one of the pair at first start."),
            req(
                "agent_token",
                "string",
                "",
                "Bearer token of the agents (and between the two managers); at least 16 characters.",
            ),
            req("bundles", "path", "", "Directory of the release bundles this manager can roll out."),
            req(
                "trusted_keys",
                "list of strings (hex)",
                "",
                "ed25519 public keys whose bundles the manager accepts; at least one.",
            ),
            opt(
                "policy",
                "path",
                "",
                "The policy file the manager holds; \"Reapply configuration\" installs it on a cluster.",
            ),
            opt(
                "poll_interval",
                "duration",
                "",
                "How often every agent is polled. Before config_version 2: `poll_ms`, milliseconds.",
            ),
            opt(
                "takeover_after",
                "duration",
                "",
                "How long the standby waits without hearing from the active manager before it takes over; longer \
                 than `poll_interval`. Before config_version 2: `takeover_ms`, milliseconds.",
            ),
            opt(
                "replication_timeout",
                "duration",
                "",
                "Longest wait for a restarted server's replication to synchronise. Before config_version 2: \
                 `replication_timeout_s`, seconds.",
            ),
            opt("max_parallel_clusters", "integer", "clusters", "Most clusters upgrading at once; unset: 16."),
        ],
    },
    Section {
        path: "manager.sites[]",
        about: "Sites (`sites = [{ name = \"east\", primary = true }]`); exactly one is primary.",
        optional: true,
        entries: &[
            req("name", "string", "", "The site's name."),
            opt("primary", "boolean", "", "The primary site: upgraded first within each segment."),
        ],
    },
    Section {
        path: "manager.segments[]",
        about: "Segments: groups of non-manager clusters upgraded in one maintenance window, in the order listed.",
        optional: true,
        entries: &[req("name", "string", "", "The segment's name.")],
    },
    Section {
        path: "manager.clusters[]",
        about: "Clusters of servers.",
        optional: true,
        entries: &[
            req("name", "string", "", "The cluster's name."),
            req("application", "`manager`, `engine`, `probe` or `collector`", "", "What its servers run."),
            opt(
                "designation",
                "`Primary` or `Secondary`",
                "",
                "For manager clusters: which of the pair's clusters this is.",
            ),
            req("site", "string", "", "The cluster's site."),
            opt("segment", "string", "", "Its segment (non-manager clusters)."),
        ],
    },
    Section {
        path: "manager.clusters[].servers[]",
        about: "The servers of a cluster.",
        optional: true,
        entries: &[
            req("hostname", "string", "", "The server's name (unique in the system; its agent's `server`)."),
            opt("site", "string", "", "Its site; unset: the cluster's."),
            req(
                "role",
                "`Active`, `Standby` or `Spare`",
                "",
                "Its role when the cluster has no SRP pair to say (a spare, or a single server).",
            ),
            req("agent", "string (URL)", "", "Its agent's URL."),
        ],
    },
];
