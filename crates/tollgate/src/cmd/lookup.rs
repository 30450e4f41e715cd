//! `tollgate lookup --from A --to B`: which rule decides a call, and the NAPTR answer.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use tollgate_api::ErrorCode;
use tollgate_api::web::{self, Lookup, LookupParams};
use tollgate_enum::Responder;
use tollgate_policy::{CompileOptions, InstalledPolicy, PolicySource, compile};

use crate::cli::LookupArgs;
use crate::cmd::api_client::ApiClient;
use crate::config::Config;

fn local_responder(config: &Config, args: &LookupArgs) -> anyhow::Result<Responder> {
    let installed = match &args.policy {
        Some(file) => {
            let intercepts = config.enum_.intercept_names();
            let compiled = compile(
                &PolicySource::from_path(file)?,
                CompileOptions { plan: &config.dialing_plan, intercepts: Some(&intercepts) },
            )
            .map_err(|e| anyhow!("{e}"))?;
            Arc::new(InstalledPolicy::new(None, compiled))
        }
        None => {
            let dir = args.state_dir.clone().unwrap_or_else(|| config.node.state_dir.clone());
            let service = super::policy::offline_service(config, &dir, super::policy::Access::Read)?;
            if let Some(e) = service.load_error() {
                eprintln!("warning: {e}");
            }
            service.installed().clone()
        }
    };
    Ok(Responder::new(config.enum_.clone(), config.dialing_plan.clone(), installed, config.node.name.clone()))
}

fn print(l: &Lookup) -> std::io::Result<()> {
    let d = &l.decision;
    outln!("direction {}", d.direction)?;
    match &d.rule {
        Some(r) => outln!("rule      {} (line {})", r.name, r.line)?,
        None => outln!("rule      none matched: default allow")?,
    }
    outln!("action    {}", d.action)?;
    outln!(
        "policy    {}",
        l.policy_version
            .map_or("none installed (or a file given with --policy)".to_string(), |v| format!("version {v}"))
    )?;
    outln!("query     {} NAPTR (calling number sent as: {})", l.query_name, l.source_sent_as)?;
    outln!("answer    {}", l.rcode)?;
    for a in &l.answers {
        outln!("          {a}")?;
    }
    for c in &l.counters {
        let what = match c.window_secs {
            Some(w) => format!("velocity {}: {} calls in {w} s (limit {})", c.rule, c.count, c.limit),
            None => format!("concurrent {}: {} calls in progress (limit {})", c.rule, c.count, c.limit),
        };
        outln!("counter   {what}")?;
    }
    if let Some(shared) = l.shared.describe() {
        outln!("shared    {shared}")?;
    }
    if !l.verdicts.is_empty() {
        outln!("rules checked in order:")?;
        for v in &l.verdicts {
            let verdict = match &v.failed {
                None => "MATCH".to_string(),
                Some(why) => format!("no ({why})"),
            };
            outln!("  line {:>4}  {:<36} {verdict}", v.line, v.rule)?;
        }
    }
    Ok(())
}

/// Runs `lookup`.
pub fn run(config: &Config, args: &LookupArgs) -> anyhow::Result<ExitCode> {
    let at: DateTime<Utc> = match &args.at {
        Some(t) => DateTime::parse_from_rfc3339(t).with_context(|| format!("--at {t:?} is not RFC 3339"))?.into(),
        None => Utc::now(),
    };
    let lookup = match &args.api {
        Some(base) => {
            let client = ApiClient::for_config(config, base, config.cli_token(), None)?;
            let params = LookupParams { from: args.from.clone(), to: args.to.clone() };
            let path = format!("/api/v1/lookup?{}", web::query(&params));
            match client.get::<Lookup>(&path) {
                Ok(l) => l,
                // A collector (or a manager) has no policy to ask.
                Err(e) if e.code() == Some(ErrorCode::NotFound) => {
                    return Err(anyhow!(
                        "{base} runs no engine: ask a `tollgate serve` or `tollgate engine` ({:#})",
                        e.into_anyhow()
                    ));
                }
                Err(e) => return Err(e.into_anyhow()),
            }
        }
        None => {
            let plan = &config.dialing_plan;
            let to = plan.normalize(&args.to).map_err(|e| anyhow!("--to: {e}"))?;
            let from =
                args.from.as_deref().map(|f| plan.normalize(f)).transpose().map_err(|e| anyhow!("--from: {e}"))?;
            local_responder(config, args)?.lookup(from, to, at)
        }
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&lookup)?)?;
    } else {
        print(&lookup)?;
    }
    Ok(ExitCode::SUCCESS)
}
