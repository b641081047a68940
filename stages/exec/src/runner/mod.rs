//! The middle layer: the step runner's protocol over a stream attached to a
//! shell in a container, and [`DockerBackend`](docker_backend::DockerBackend),
//! which sends a command to a container's runner or, when it cannot run it,
//! to the engine. It imports only the engine layer below.

pub(crate) mod docker_backend;
pub(crate) mod step_runner;
