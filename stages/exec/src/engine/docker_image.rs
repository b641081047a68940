//! Images on a Docker engine: a local image by reference, a pull of a missing
//! one, and `build` contexts built once as `clnrm-build/<context hash>`. Not
//! the context itself (that is `context`), nor containers.

use std::collections::HashMap;
use std::path::Path;

use futures_util::StreamExt;
use testcontainers::bollard;
use testcontainers::bollard::query_parameters::{BuildImageOptions, CreateImageOptions};

use super::context::build_context;
use super::docker::DockerEngine;
use super::docker_answers::{engine, error_text, is_not_found};
use crate::{ExecError, ImageOrigin, ResolvedImage};

impl DockerEngine {
    async fn image_id(&self, reference: &str) -> Result<Option<String>, ExecError> {
        match self.docker().inspect_image(reference).await {
            Ok(image) => Ok(Some(image.id.unwrap_or_default())),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(engine(e)),
        }
    }

    pub(crate) async fn ensure_reference(
        &self,
        reference: &str,
    ) -> Result<ResolvedImage, ExecError> {
        if let Some(id) = self.image_id(reference).await? {
            return Ok(ResolvedImage {
                id,
                reference: reference.to_string(),
                context_hash: None,
                source: ImageOrigin::Local,
            });
        }
        let (repo, tag) = split_reference(reference);
        let options = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let unavailable = |reason: String| ExecError::ImageUnavailable {
            reference: reference.to_string(),
            reason,
        };
        let mut pull = self.docker().create_image(Some(options), None, None);
        while let Some(item) = pull.next().await {
            if let Err(e) = item {
                return Err(unavailable(error_text(&e)));
            }
        }
        match self.image_id(reference).await? {
            Some(id) => Ok(ResolvedImage {
                id,
                reference: reference.to_string(),
                context_hash: None,
                source: ImageOrigin::Pulled,
            }),
            None => Err(unavailable(
                "the pull finished but the image is not there".into(),
            )),
        }
    }

    pub(crate) async fn ensure_build(
        &self,
        context: &str,
        dockerfile: &str,
        root: &Path,
    ) -> Result<ResolvedImage, ExecError> {
        let dir = root.join(context);
        let failed = |reason: String| ExecError::BuildFailed {
            context: context.to_string(),
            reason,
        };
        let ctx = {
            let dir = dir.clone();
            let dockerfile = dockerfile.to_string();
            tokio::task::spawn_blocking(move || build_context(&dir, &dockerfile))
                .await
                .map_err(|e| failed(e.to_string()))?
                .map_err(|e| failed(e.to_string()))?
        };
        let tag = ctx.image_tag();
        let lock = {
            let mut builds = self.builds.lock().await;
            builds.entry(ctx.hash.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;
        let resolved = |id: String, source| ResolvedImage {
            id,
            reference: format!("{tag}:latest"),
            context_hash: Some(ctx.hash.clone()),
            source,
        };
        if let Some(id) = self.image_id(&tag).await? {
            return Ok(resolved(id, ImageOrigin::Local));
        }
        // The classic builder: it needs nothing but the engine (BuildKit through
        // the API needs a session, and the CLI here may want buildx).
        let options = BuildImageOptions {
            dockerfile: ctx.dockerfile.clone(),
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            labels: Some(HashMap::from([
                ("clnrm.build".to_string(), "true".to_string()),
                ("clnrm.context".to_string(), ctx.hash.clone()),
            ])),
            ..Default::default()
        };
        let body = bollard::body_full(bytes::Bytes::from(ctx.tar.clone()));
        let mut build = self.docker().build_image(options, None, Some(body));
        let mut log = String::new();
        while let Some(item) = build.next().await {
            match item {
                Ok(info) => {
                    if let Some(s) = info.stream {
                        log.push_str(&s);
                    }
                }
                Err(e) => {
                    return Err(failed(format!(
                        "{}{}",
                        error_text(&e),
                        tail_lines(&log, 10, "\nbuild output:\n")
                    )))
                }
            }
        }
        match self.image_id(&tag).await? {
            Some(id) => Ok(resolved(id, ImageOrigin::Built)),
            None => Err(failed(format!(
                "the engine built nothing{}",
                tail_lines(&log, 10, "\nbuild output:\n")
            ))),
        }
    }
}

/// `repo[:tag]` → (repo, tag), `latest` when no tag (a pull without a tag would fetch every tag).
fn split_reference(reference: &str) -> (&str, &str) {
    if let Some((repo, _digest)) = reference.split_once('@') {
        return (repo, &reference[repo.len() + 1..]);
    }
    match reference.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (reference, "latest"),
    }
}

fn tail_lines(text: &str, n: usize, prefix: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    format!(
        "{prefix}{}",
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repo_and_tag() {
        assert_eq!(split_reference("alpine"), ("alpine", "latest"));
        assert_eq!(split_reference("alpine:3.20"), ("alpine", "3.20"));
        assert_eq!(
            split_reference("localhost:5000/a/b"),
            ("localhost:5000/a/b", "latest")
        );
        assert_eq!(
            split_reference("localhost:5000/a:1"),
            ("localhost:5000/a", "1")
        );
        assert_eq!(split_reference("a@sha256:abc"), ("a", "sha256:abc"));
    }
}
