//! A case's verdict: what came of the callback for its plugins, field by field against what the
//! case expects.

use serde_json::Value;

use super::Expect;
use crate::history::{Decision, Trace};
use crate::outcomes::FailureKind;

/// One field of a case that came out otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// What is compared (`result`, `err_code`, `changes.groupName`...).
    pub field: String,
    pub expected: String,
    pub got: String,
}

/// What came of a callback for its plugins.
#[derive(Debug)]
pub(super) enum Got {
    GoOn(Value),
    Refused {
        by: String,
        err_code: i32,
        err_msg: String,
        err_dlt: String,
    },
    Fails {
        by: String,
        cause: FailureKind,
        detail: String,
    },
}

/// Reads the first refusal or failure of the chain, or "go on" with the answer.
pub(super) fn got(trace: &Trace, answer: Value) -> Got {
    for step in &trace.steps {
        match &step.decision {
            Decision::GoOn => {}
            Decision::Refused {
                err_code,
                err_msg,
                err_dlt,
            } => {
                return Got::Refused {
                    by: step.plugin.to_string(),
                    err_code: *err_code,
                    err_msg: err_msg.clone(),
                    err_dlt: err_dlt.clone(),
                };
            }
            Decision::Failed { cause, detail } => {
                return Got::Fails {
                    by: step.plugin.to_string(),
                    cause: *cause,
                    detail: detail.clone(),
                };
            }
        }
    }
    Got::GoOn(answer)
}

pub(super) fn compare(expect: &Expect, got: &Got) -> Vec<Difference> {
    let mut differences = Vec::new();
    let mut check = |field: &str, expected: Option<String>, got: String| {
        if let Some(expected) = expected
            && expected != got
        {
            differences.push(Difference {
                field: field.to_owned(),
                expected,
                got,
            });
        }
    };
    let (result, by) = match got {
        Got::GoOn(_) => ("go_on", None),
        Got::Refused { by, .. } => ("refused", Some(by.clone())),
        Got::Fails { by, .. } => ("fails", Some(by.clone())),
    };
    let summary = match got {
        Got::GoOn(_) => "go_on".to_owned(),
        Got::Refused {
            by,
            err_code,
            err_msg,
            ..
        } => format!("refused by {by} ({err_code}: {err_msg})"),
        Got::Fails { by, cause, detail } => format!("{by} fails ({cause}: {detail})"),
    };
    if expect.result.as_str() != result {
        check("result", Some(expect.result.as_str().to_owned()), summary);
        return differences;
    }
    check("by", expect.by.clone(), by.unwrap_or_default());
    match got {
        Got::Refused {
            err_code,
            err_msg,
            err_dlt,
            ..
        } => {
            check(
                "err_code",
                expect.err_code.map(|c| c.to_string()),
                err_code.to_string(),
            );
            check("err_msg", expect.err_msg.clone(), err_msg.clone());
            check("err_dlt", expect.err_dlt.clone(), err_dlt.clone());
        }
        Got::Fails { cause, .. } => check("cause", expect.cause.clone(), cause.as_str().to_owned()),
        Got::GoOn(answer) => {
            let changes = expect.changes.clone().unwrap_or_default();
            for (field, expected) in changes {
                let expected = serde_json::to_value(expected).unwrap_or_default();
                let got = answer.get(&field).cloned().unwrap_or(Value::Null);
                if expected != got {
                    differences.push(Difference {
                        field: format!("changes.{field}"),
                        expected: expected.to_string(),
                        got: if got.is_null() {
                            "(not changed)".into()
                        } else {
                            got.to_string()
                        },
                    });
                }
            }
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_field() {
        let expect: Expect = toml::from_str(
            "result = \"refused\"\nby = \"10-guard\"\nerr_code = 20001\nerr_msg = \"no\"\n",
        )
        .unwrap();
        let got = Got::Refused {
            by: "10-guard".into(),
            err_code: 20002,
            err_msg: "no".into(),
            err_dlt: String::new(),
        };
        assert_eq!(
            compare(&expect, &got),
            vec![Difference {
                field: "err_code".into(),
                expected: "20001".into(),
                got: "20002".into()
            }]
        );
        let expect: Expect =
            toml::from_str("result = \"go_on\"\n[changes]\nneedVerification = 1\n").unwrap();
        let differences = compare(&expect, &Got::GoOn(serde_json::json!({"actionCode": 0})));
        assert_eq!(differences[0].field, "changes.needVerification");
        assert_eq!(differences[0].got, "(not changed)");
        let wrong = compare(
            &expect,
            &Got::Fails {
                by: "p".into(),
                cause: FailureKind::Timeout,
                detail: "ran out of time".into(),
            },
        );
        assert_eq!(wrong[0].field, "result");
        assert_eq!(wrong[0].got, "p fails (timeout: ran out of time)");
    }
}
