//! The bottom layer: calls to the Docker engine (containers, images, networks,
//! exec, attach) and what clnrm owns there (labels, sessions, reaping). It
//! imports nothing of the layers above.

pub(crate) mod container_facts;
pub(crate) mod context;
pub(crate) mod docker;
pub(crate) mod docker_answers;
pub(crate) mod docker_exec;
pub(crate) mod docker_image;
pub(crate) mod docker_network;
pub(crate) mod engine_socket;
pub(crate) mod network_space;
pub(crate) mod session;
