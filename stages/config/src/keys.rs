//! Every key of the test format, table by table, in canonical order (the order of docs/reference.md §4):
//! the one list that `clnrm fmt` sorts by and that tests hold the parser and the JSON Schema
//! to. It is not what the parser matches on (its readers match on the keys themselves, and
//! the tests check the two agree), and it says nothing of value types.

/// The keys of one kind of table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableKeys {
    /// Which tables: a key path pattern where `*` is any service name and `[]` any element
    /// of an array of tables (`service.*.volumes[]`); `""` is the top level.
    pub table: &'static str,
    /// Every key the parser reads here, in canonical order (the ignored ones included).
    pub keys: &'static [&'static str],
    /// Keys of older clnrm versions that are read and ignored with a warning.
    pub ignored: &'static [&'static str],
}

/// The step keys, shared by `[[steps]]` and a scenario's `steps`.
const STEP: &[&str] = &[
    "name",
    "description",
    "service",
    "command",
    "run",
    "expected_exit_code",
    "expected_output_regex",
    "expected_stderr_regex",
    "workdir",
    "env",
    "timeout",
    "timeout_ms",
    "continue_on_failure",
    "expected_output_regex_not",
    "expected_stderr_regex_not",
    "expected_json",
    "capture",
    "wait_until",
    "retries",
    "should_fail",
];
const STEP_IGNORED: &[&str] = &[];
const WAIT_UNTIL: &[&str] = &["timeout", "interval"];
const RETRIES: &[&str] = &["count", "delay"];
const CAPTURE: &[&str] = &["json", "regex", "from", "redact"];
const EXPECTED_JSON: &[&str] = &["path", "exists", "equals", "matches", "count"];

/// A step table's keys, and those of its sub-tables, under `$step` (`steps[]`, `setup[]`, ...).
macro_rules! step_tables {
    ($step:literal) => {
        [
            TableKeys {
                table: $step,
                keys: STEP,
                ignored: STEP_IGNORED,
            },
            TableKeys {
                table: concat!($step, ".wait_until"),
                keys: WAIT_UNTIL,
                ignored: &[],
            },
            TableKeys {
                table: concat!($step, ".retries"),
                keys: RETRIES,
                ignored: &[],
            },
            TableKeys {
                table: concat!($step, ".capture.*"),
                keys: CAPTURE,
                ignored: &[],
            },
            TableKeys {
                table: concat!($step, ".expected_json[]"),
                keys: EXPECTED_JSON,
                ignored: &[],
            },
        ]
    };
}

const STEPS_TABLES: [TableKeys; 5] = step_tables!("steps[]");
const SETUP_TABLES: [TableKeys; 5] = step_tables!("setup[]");
const TEARDOWN_TABLES: [TableKeys; 5] = step_tables!("teardown[]");
const SCENARIO_STEP_TABLES: [TableKeys; 5] = step_tables!("scenario[].steps[]");

/// Every table of a test file whose keys are fixed. Tables of free-form keys (`[vars]`,
/// `[matrix]`, `env`, `[expect.*]`, `[otel_validation]`, `otel.resources`/`headers`) are not
/// listed.
pub const TEST_FILE_TABLES: &[TableKeys] = &[
    TableKeys {
        table: "",
        keys: &[
            "meta",
            "test",
            "vars",
            "matrix",
            "service",
            "services",
            "setup",
            "steps",
            "scenario",
            "teardown",
            "otel",
            "otel_validation",
            "expect",
            "report",
            "determinism",
            "limits",
            "assertions",
            "template",
        ],
        ignored: &["template"],
    },
    TableKeys {
        table: "meta",
        keys: &[
            "name",
            "version",
            "description",
            "timeout",
            "retries",
            "skip_if",
            "skip_reason",
            "isolation",
        ],
        ignored: &[],
    },
    TableKeys {
        table: "meta.skip_if",
        keys: &["env"],
        ignored: &[],
    },
    TableKeys {
        table: "test",
        keys: &["metadata"],
        ignored: &[],
    },
    TableKeys {
        table: "test.metadata",
        keys: &[
            "name",
            "version",
            "description",
            "timeout",
            "timeout_seconds",
        ],
        ignored: &[],
    },
    TableKeys {
        table: "service.*",
        keys: &[
            "plugin",
            "type",
            "image",
            "build",
            "args",
            "env",
            "ports",
            "volumes",
            "health_check",
            "username",
            "password",
            "strict",
            "wait_for_span",
            "wait_for_span_timeout_secs",
        ],
        ignored: &[],
    },
    TableKeys {
        table: "service.*.build",
        keys: &["context", "dockerfile"],
        ignored: &[],
    },
    TableKeys {
        table: "service.*.volumes[]",
        keys: &["host_path", "container_path", "read_only"],
        ignored: &[],
    },
    TableKeys {
        table: "service.*.health_check",
        keys: &["cmd", "interval", "timeout", "retries"],
        ignored: &[],
    },
    STEPS_TABLES[0],
    STEPS_TABLES[1],
    STEPS_TABLES[2],
    STEPS_TABLES[3],
    STEPS_TABLES[4],
    SETUP_TABLES[0],
    SETUP_TABLES[1],
    SETUP_TABLES[2],
    SETUP_TABLES[3],
    SETUP_TABLES[4],
    TEARDOWN_TABLES[0],
    TEARDOWN_TABLES[1],
    TEARDOWN_TABLES[2],
    TEARDOWN_TABLES[3],
    TEARDOWN_TABLES[4],
    TableKeys {
        table: "scenario[]",
        keys: &[
            "name",
            "description",
            "service",
            "run",
            "steps",
            "timeout",
            "timeout_ms",
            "workdir",
            "env",
            "expected_exit_code",
            "expected_output_regex",
            "expected_stderr_regex",
            "continue_on_failure",
            "expect_success",
            "artifacts",
        ],
        ignored: &["artifacts"],
    },
    SCENARIO_STEP_TABLES[0],
    SCENARIO_STEP_TABLES[1],
    SCENARIO_STEP_TABLES[2],
    SCENARIO_STEP_TABLES[3],
    SCENARIO_STEP_TABLES[4],
    TableKeys {
        table: "otel",
        keys: &[
            "flush_timeout",
            "exporter",
            "endpoint",
            "protocol",
            "sample_ratio",
            "resources",
            "headers",
            "propagators",
        ],
        ignored: &[],
    },
    TableKeys {
        table: "otel.propagators",
        keys: &["use"],
        ignored: &[],
    },
    TableKeys {
        table: "expect",
        keys: &[
            "span",
            "order",
            "status",
            "counts",
            "window",
            "graph",
            "hermeticity",
            "temporal",
            "resource",
        ],
        ignored: &[],
    },
    TableKeys {
        table: "report",
        keys: &["json", "junit", "digest"],
        ignored: &[],
    },
    TableKeys {
        table: "determinism",
        keys: &["seed", "freeze_clock"],
        ignored: &[],
    },
    TableKeys {
        table: "limits",
        keys: &["cpu_millicores", "memory_mb"],
        ignored: &[],
    },
];

/// The keys of the tables matching `pattern` (see [`TableKeys::table`]); `services.*` is
/// read as `service.*`.
pub fn table_keys(pattern: &str) -> Option<&'static TableKeys> {
    let pattern = match pattern.strip_prefix("services.*") {
        Some(rest) => format!("service.*{rest}"),
        None => pattern.to_string(),
    };
    TEST_FILE_TABLES.iter().find(|t| t.table == pattern)
}

/// The keys the parser reads in the tables matching `pattern`, for its "did you mean"
/// hints: the one list, so the parser, `clnrm fmt` and the schema cannot drift apart.
pub(crate) fn known(pattern: &str) -> &'static [&'static str] {
    table_keys(pattern).map_or(&[], |table| table.keys)
}

/// The pattern of the table at `key` inside a table matching `parent` (`""` for the top
/// level); `element` when it is an element of an array of tables.
pub fn child_pattern(parent: &str, key: &str, element: bool) -> String {
    let mut pattern = if parent == "service" || parent == "services" {
        format!("{parent}.*")
    } else if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    };
    if element {
        pattern.push_str("[]");
    }
    pattern
}
