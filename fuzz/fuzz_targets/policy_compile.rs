//! Fuzzes the policy compiler: any text must compile or give diagnostics, never panic; any
//! compiled policy must evaluate the same with its indexes as with a linear scan.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tollgate_number::DialingPlan;
use tollgate_policy::{CallQuery, CompileOptions, PolicySource, compile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let plan = DialingPlan::nanp();
    let source = PolicySource::from_text("fuzz.toml", text, BTreeMap::new());
    match compile(&source, CompileOptions { plan: &plan, intercepts: None }) {
        Ok(policy) => {
            for (from, to) in [("+12125550100", "+12125550111"), ("+13125550666", "+12125550122")] {
                let q = CallQuery { source: from.parse().ok(), destination: to.parse().unwrap(), at: chrono::Utc::now() };
                assert_eq!(policy.evaluate(&q), policy.explain(&q).0);
            }
        }
        Err(e) => assert!(!e.diagnostics.is_empty()),
    }
});
