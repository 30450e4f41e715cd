//! The fast path: the common ENUM query answered without decoding it into hickory-proto's
//! message types, its answer written into a reused buffer.
//!
//! What it accepts (anything else is "not mine" and the hickory path answers):
//! * a query (QR=0, opcode QUERY, AA=0, TC=0; RD and CD are echoed, AD is ignored as hickory
//!   ignores it; RA, Z and the RCODE bits are 0) with exactly one question and no answer or
//!   authority records, and no bytes after the message;
//! * a question name of uncompressed labels whose bytes print as themselves (letters, digits,
//!   `_`, and `-` not first), at most 200 octets, that is not the health-check name and reads
//!   as a number under a suffix (with the optional `src-` label) exactly as
//!   [`Responder::parse_name`] reads it (it is that function, on the same text);
//! * type NAPTR or ANY, class IN;
//! * at most one additional record, an OPT (EDNS0) of version 0 with no extended RCODE, no
//!   flag but DO, whose options are at most one, of the configured Source-URI code (not a
//!   code hickory-proto parses itself).
//!
//! What it must never do: answer differently from [`Responder::respond_hickory`] (same bytes,
//! same record, same decision: the differential test and the `enum_fastpath` fuzz target
//! check it), panic on any input, or fall back after the call was evaluated (the velocity
//! counters would count it twice): an evaluated call whose answer does not fit (UDP size
//! limit) is encoded, and truncated, by hickory-proto.
//!
//! The policy is asked through the same code as the hickory path ([`Responder::evaluate`]);
//! only the wire encoding is done here, with hickory-proto's name compression reproduced
//! exactly (a name, or its longest suffix, already written with the same bytes is a pointer
//! to the first place it was written; at most 64 places are remembered).

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{Name, RData, Record};
use tollgate_policy::VelocityCounters;
use tollgate_records::Transport;

use super::{Answered, Caller, EDNS_PAYLOAD, Evaluated, Head, Outcome, QueryContext, Rendered, Responder};
use crate::config::EnumConfig;

/// The longest question name (wire octets, with the root label) the fast path takes; real
/// ENUM names are far shorter, and hickory-proto's own length limits are never reached.
const MAX_NAME: usize = 200;
/// How many names hickory-proto's encoder remembers for compression.
const POINTER_SLOTS: usize = 64;
/// DNS type NAPTR.
const NAPTR: u16 = 35;
/// DNS query type ANY.
const ANY: u16 = 255;
/// DNS type OPT.
const OPT: u16 = 41;
/// DNS type SOA.
const SOA: u16 = 6;
/// DNS class IN.
const IN: u16 = 1;
/// EDNS option codes hickory-proto parses into their own types (NSID, Client Subnet): a
/// Source-URI configured on one of them is read from the hickory path only.
const PARSED_OPTION_CODES: [u16; 2] = [3, 8];

/// What the fast path writes verbatim, built once from the configuration and the SOA.
pub(super) struct Templates {
    /// NAPTR rdata before the regexp: order, preference, flags and service (character
    /// strings); `None` when flags or service are over 255 octets (hickory-proto cannot
    /// encode them: such answers are its to give).
    naptr_head: Option<Vec<u8>>,
    /// The SOA's owner, MNAME and RNAME in wire form (labels, without the root label).
    soa_owner: Vec<u8>,
    soa_mname: Vec<u8>,
    soa_rname: Vec<u8>,
    /// The SOA's TTL.
    soa_ttl: u32,
    /// SERIAL, REFRESH, RETRY, EXPIRE, MINIMUM.
    soa_numbers: [u8; 20],
    /// The SOA is as `Responder::new` builds it (always, unless that changes).
    soa_known: bool,
}

/// A name's labels in wire form, without the root label.
fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out
}

/// A DNS character string (length octet and bytes), or `None` if over 255 octets.
fn character_string(out: &mut Vec<u8>, text: &[u8]) -> Option<()> {
    out.push(u8::try_from(text.len()).ok()?);
    out.extend_from_slice(text);
    Some(())
}

impl Templates {
    /// Templates for `config` and the SOA record of negative answers.
    pub(super) fn new(config: &EnumConfig, soa: &Record) -> Self {
        let naptr = &config.naptr;
        let mut head = Vec::with_capacity(8 + naptr.flags.len() + naptr.service.len());
        head.extend_from_slice(&naptr.order.to_be_bytes());
        head.extend_from_slice(&naptr.preference.to_be_bytes());
        let naptr_head = character_string(&mut head, naptr.flags.as_bytes())
            .and_then(|()| character_string(&mut head, naptr.service.as_bytes()))
            .map(|()| head);
        let mut templates = Templates {
            naptr_head,
            soa_owner: wire(&soa.name),
            soa_mname: Vec::new(),
            soa_rname: Vec::new(),
            soa_ttl: soa.ttl,
            soa_numbers: [0; 20],
            soa_known: false,
        };
        if let RData::SOA(data) = &soa.data
            && u16::from(soa.dns_class) == IN
        {
            templates.soa_mname = wire(&data.mname);
            templates.soa_rname = wire(&data.rname);
            let numbers = [data.serial, data.refresh as u32, data.retry as u32, data.expire as u32, data.minimum];
            for (i, n) in numbers.iter().enumerate() {
                templates.soa_numbers[i * 4..i * 4 + 4].copy_from_slice(&n.to_be_bytes());
            }
            templates.soa_known = true;
        }
        templates
    }
}

/// The parts of an accepted query the answer needs, borrowed from the packet.
struct Common<'p> {
    id: [u8; 2],
    rd: bool,
    cd: bool,
    /// The question as sent (name, type, class): echoed as is.
    question: &'p [u8],
    /// The question name's labels in wire form, without the root label.
    name: &'p [u8],
    /// The requester's UDP payload size, when it sent EDNS0.
    edns_payload: Option<u16>,
    /// The Source-URI option's data, when sent.
    source_uri: Option<&'p [u8]>,
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

/// Reads the common query, or `None` if `packet` is anything else.
fn parse(packet: &[u8], source_option: Option<u16>) -> Option<Common<'_>> {
    if packet.len() < 12 || packet[2] & !0x01 != 0 || packet[3] & !0x30 != 0 {
        return None;
    }
    let counts = [u16_at(packet, 4)?, u16_at(packet, 6)?, u16_at(packet, 8)?, u16_at(packet, 10)?];
    if counts[0] != 1 || counts[1] != 0 || counts[2] != 0 || counts[3] > 1 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len == 0 {
            break;
        }
        // Over 63: a compression pointer or a reserved label type.
        if len > 63 {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        let printable = |(i, &b): (usize, &u8)| b.is_ascii_alphanumeric() || b == b'_' || (b == b'-' && i > 0);
        if !label.iter().enumerate().all(printable) {
            return None;
        }
        at += 1 + len;
        if at - 12 >= MAX_NAME {
            return None;
        }
    }
    let name = &packet[12..at];
    if name.is_empty() {
        return None;
    }
    let qtype = u16_at(packet, at + 1)?;
    if !matches!(qtype, NAPTR | ANY) || u16_at(packet, at + 3)? != IN {
        return None;
    }
    let question_end = at + 5;
    let question = &packet[12..question_end];
    let mut edns_payload = None;
    let mut source_uri = None;
    let mut end = question_end;
    if counts[3] == 1 {
        // OPT: root owner, type, payload size, extended RCODE, version, flags, options.
        if *packet.get(end)? != 0 || u16_at(packet, end + 1)? != OPT {
            return None;
        }
        let payload = u16_at(packet, end + 3)?;
        let (rcode_high, version, flags) = (*packet.get(end + 5)?, *packet.get(end + 6)?, u16_at(packet, end + 7)?);
        if rcode_high != 0 || version != 0 || flags & 0x7fff != 0 {
            return None;
        }
        let rdlen = usize::from(u16_at(packet, end + 9)?);
        let options = packet.get(end + 11..end + 11 + rdlen)?;
        if !options.is_empty() {
            let code = u16_at(options, 0)?;
            let len = usize::from(u16_at(options, 2)?);
            let wanted = source_option.filter(|c| !PARSED_OPTION_CODES.contains(c));
            if Some(code) != wanted || options.len() != 4 + len {
                return None;
            }
            source_uri = Some(&options[4..]);
        }
        edns_payload = Some(payload);
        end += 11 + rdlen;
    }
    if end != packet.len() {
        return None;
    }
    Some(Common {
        id: [packet[0], packet[1]],
        rd: packet[2] & 0x01 != 0,
        cd: packet[3] & 0x10 != 0,
        question,
        name,
        edns_payload,
        source_uri,
    })
}

/// hickory-proto's name compression: the names (label suffixes, wire form) already written
/// and where.
struct Pointers<'a> {
    at: [u16; POINTER_SLOTS],
    names: [&'a [u8]; POINTER_SLOTS],
    len: usize,
}

impl<'a> Pointers<'a> {
    fn new() -> Self {
        Pointers { at: [0; POINTER_SLOTS], names: [&[]; POINTER_SLOTS], len: 0 }
    }

    fn remember(&mut self, at: usize, name: &'a [u8]) {
        if self.len < POINTER_SLOTS
            && let Ok(at) = u16::try_from(at)
            && at < 0x3fff
        {
            self.at[self.len] = at;
            self.names[self.len] = name;
            self.len += 1;
        }
    }

    /// Writes `name` (wire labels without the root label) compressed: label by label, its
    /// rest is a pointer as soon as the rest was written before.
    fn write(&mut self, out: &mut Vec<u8>, name: &'a [u8]) {
        let mut i = 0;
        while i < name.len() {
            let rest = &name[i..];
            if let Some(k) = self.names[..self.len].iter().position(|n| *n == rest) {
                out.extend_from_slice(&(0xc000 | self.at[k]).to_be_bytes());
                return;
            }
            self.remember(out.len(), rest);
            let len = usize::from(name[i]);
            out.extend_from_slice(&name[i..i + 1 + len]);
            i += 1 + len;
        }
        out.push(0);
    }

    /// Remembers a name written uncompressed at `at` (the question's).
    fn written(&mut self, at: usize, name: &'a [u8]) {
        let mut i = 0;
        while i < name.len() {
            self.remember(at + i, &name[i..]);
            i += 1 + usize::from(name[i]);
        }
    }
}

/// Fills in a record's RDLENGTH at `place` once its data ends at `out.len()`.
fn set_rdlength(out: &mut [u8], place: usize) {
    let len = (out.len() - place - 2) as u16;
    out[place..place + 2].copy_from_slice(&len.to_be_bytes());
}

impl Responder {
    /// Answers `packet` by the fast path, writing the answer into `buf` (cleared first), or
    /// gives `buf` back if the packet is not the common query (see the module doc): then
    /// [`Responder::respond_hickory`] answers it. Counts the call in the velocity counters
    /// when it answers.
    pub fn respond_fast(&self, packet: &[u8], ctx: &QueryContext, buf: Vec<u8>) -> Result<Answered, Vec<u8>> {
        self.fast_counting(packet, ctx, &*self.velocity, buf)
    }

    pub(super) fn fast_counting(
        &self,
        packet: &[u8],
        ctx: &QueryContext,
        counters: &dyn VelocityCounters,
        mut buf: Vec<u8>,
    ) -> Result<Answered, Vec<u8>> {
        let Some(query) = parse(packet, self.config.source_edns_option) else { return Err(buf) };
        // The name as the hickory path sees it: printed (nothing to escape) and lowercased.
        let mut text = [0u8; MAX_NAME + 1];
        let mut len = 0;
        let mut i = 0;
        while i < query.name.len() {
            let label_len = usize::from(query.name[i]);
            for &b in &query.name[i + 1..i + 1 + label_len] {
                text[len] = b.to_ascii_lowercase();
                len += 1;
            }
            text[len] = b'.';
            len += 1;
            i += 1 + label_len;
        }
        let Ok(text) = std::str::from_utf8(&text[..len]) else { return Err(buf) };
        if text == self.health_name {
            return Err(buf);
        }
        let Ok((destination, label_source)) = self.parse_name(text) else { return Err(buf) };
        let option_source = query.source_uri.map_or(Caller::Absent, |data| self.uri_caller(data));
        let caller = Caller::pick(option_source, label_source);
        let evaluated = self.evaluate(destination, caller.number(), ctx, counters);
        let unreadable_source = match caller {
            Caller::Unreadable(text) => Some(text),
            _ => None,
        };
        let limit = match (ctx.transport, query.edns_payload) {
            (Transport::Tcp, _) => usize::from(u16::MAX),
            (Transport::Udp, Some(payload)) => usize::from(payload.clamp(512, EDNS_PAYLOAD)),
            (Transport::Udp, None) => 512,
        };
        let Some(rcode) = self.write(&query, &evaluated, &mut buf, limit) else {
            // Evaluated (and counted) already: hickory-proto encodes, and truncates, it.
            let mut answer = self.encode_with_hickory(packet, evaluated, ctx);
            answer.unreadable_source = unreadable_source;
            return Ok(answer);
        };
        let Evaluated { decision, fail_open, record, .. } = evaluated;
        let (record, stale) = self.complete(Some(record), rcode, ctx);
        Ok(Answered {
            bytes: buf,
            record,
            outcome: if fail_open { Outcome::FailOpen } else { Outcome::Decision },
            decision: Some(decision),
            stale,
            unreadable_source,
            fast_path: true,
        })
    }

    /// An evaluated call whose answer the fast path cannot write, encoded by hickory-proto.
    fn encode_with_hickory(&self, packet: &[u8], evaluated: Evaluated, ctx: &QueryContext) -> Answered {
        match Message::from_vec(packet) {
            Ok(req) if req.queries.len() == 1 => self.answer_evaluated(&req, &req.queries[0], evaluated, ctx),
            // Unreachable for a packet the fast path parsed (the fuzz target checks it).
            _ => {
                let head = Head {
                    id: u16::from_be_bytes([packet[0], packet[1]]),
                    op_code: OpCode::Query,
                    rd: packet[2] & 0x01 != 0,
                };
                self.error(head, None, None, ResponseCode::FormErr, ctx)
            }
        }
    }

    /// Writes the answer of `evaluated` into `out`; `None` (and `out` unusable) if it cannot
    /// be written here: over `limit` octets, or data hickory-proto must refuse.
    fn write(
        &self,
        query: &Common<'_>,
        evaluated: &Evaluated,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Option<ResponseCode> {
        let t = &self.templates;
        let (rcode, naptr) = match &evaluated.rendered {
            Rendered::Naptr(regexp) => (ResponseCode::NoError, Some((t.naptr_head.as_deref()?, regexp.as_bytes()))),
            Rendered::NoRecord if t.soa_known => (self.no_record_rcode(), None),
            Rendered::NoRecord => return None,
        };
        out.clear();
        out.extend_from_slice(&query.id);
        // QR, opcode QUERY, AA (never REFUSED here), RD echoed; CD echoed, RCODE.
        out.push(0x84 | u8::from(query.rd));
        out.push((u8::from(query.cd) << 4) | (u16::from(rcode) as u8 & 0x0f));
        let answers = u16::from(naptr.is_some());
        let additionals = u16::from(query.edns_payload.is_some());
        for count in [1, answers, 1 - answers, additionals] {
            out.extend_from_slice(&count.to_be_bytes());
        }
        out.extend_from_slice(query.question);
        let mut pointers = Pointers::new();
        pointers.written(12, query.name);
        if let Some((head, regexp)) = naptr {
            pointers.write(out, query.name);
            out.extend_from_slice(&NAPTR.to_be_bytes());
            out.extend_from_slice(&IN.to_be_bytes());
            out.extend_from_slice(&self.config.ttl.to_be_bytes());
            let place = out.len();
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(head);
            character_string(out, regexp)?;
            // Replacement: the root name.
            out.push(0);
            set_rdlength(out, place);
        } else {
            pointers.write(out, &t.soa_owner);
            out.extend_from_slice(&SOA.to_be_bytes());
            out.extend_from_slice(&IN.to_be_bytes());
            out.extend_from_slice(&t.soa_ttl.to_be_bytes());
            let place = out.len();
            out.extend_from_slice(&[0, 0]);
            pointers.write(out, &t.soa_mname);
            pointers.write(out, &t.soa_rname);
            out.extend_from_slice(&t.soa_numbers);
            set_rdlength(out, place);
        }
        if query.edns_payload.is_some() {
            // OPT: root, type, our payload size, no extended RCODE, version 0, no flags, no options.
            out.push(0);
            out.extend_from_slice(&OPT.to_be_bytes());
            out.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        }
        (out.len() <= limit).then_some(rcode)
    }
}
