//! The top layer: what a test does. Its services' containers are created and
//! started as a set (`create_start`, `services`), each becomes ready, the
//! steps run in order (`steps`), and everything is torn down (`test_run`).
//! It talks to containers only through the [`Backend`](crate::Backend) trait, so it
//! imports neither `engine` nor `runner` code, only the names they define.

pub(crate) mod create_start;
pub(crate) mod outcome;
pub(crate) mod progress;
pub(crate) mod services;
pub(crate) mod steps;
pub(crate) mod test_run;
pub(crate) mod test_set;
