//! `tollgate analytics`: an Analytics view from a running collector, as a table, JSON or CSV.

use std::process::ExitCode;

use tollgate_api::web::{self, AnalyticsParams, AnalyticsResult};
use tollgate_store::View;

use crate::cli::AnalyticsArgs;
use crate::cmd::api_client::{ApiClient, ApiError};
use crate::config::Config;

/// Runs `analytics`.
pub fn run(config: &Config, args: &AnalyticsArgs) -> anyhow::Result<ExitCode> {
    let base = args.api.clone().unwrap_or_else(|| config.api_url());
    let client = ApiClient::for_config(config, &base, args.token.clone().or_else(|| config.cli_token()), None)?;
    let params = AnalyticsParams {
        dataset: Some(args.dataset.clone()),
        view: Some(args.view.clone()),
        grouping: Some(args.grouping.clone()),
        device: Some(args.device.clone()),
        from: args.from.clone(),
        to: args.to.clone(),
        range: None,
        format: args.csv.then(|| "csv".to_string()),
    };
    let path = format!("/api/v1/analytics?{}", web::query(&params));
    if args.csv {
        let text = client.get_text(&path).map_err(ApiError::into_anyhow)?;
        out!("{text}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let r: AnalyticsResult = client.get(&path).map_err(ApiError::into_anyhow)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let q = &r.query;
    outln!(
        "{} / {} / {} / {}  {} to {} UTC  ({} records)",
        q.dataset,
        q.view,
        q.grouping.as_str(),
        q.device.as_deref().unwrap_or("All"),
        q.from.format("%Y-%m-%d %H:%M"),
        q.to.format("%Y-%m-%d %H:%M"),
        r.total
    )?;
    match q.view {
        View::AverageCps => {
            for p in r.series.iter().filter(|p| p.count > 0) {
                outln!("{}  {:>10}  {:>10.4}/s", p.bucket.format("%Y-%m-%d %H:%M"), p.count, p.value)?;
            }
        }
        _ => {
            for (i, row) in r.summary.iter().enumerate() {
                outln!("{:>3}  {:<24} {:<12} {:>10}", i + 1, row.key, row.detail, row.count)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
