//! `bidder fetch-hf`: a GGUF from the Hugging Face hub into the models directory, for machines
//! that can reach the hub (GPU boxes running larger models). The download goes through the hub
//! cache (`HF_HOME`, resumable, shared with other tools), honours `HF_ENDPOINT` (mirrors) and
//! `HF_TOKEN` (gated repositories), and is checked against a sha256 when one is given.

use std::io::Read;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("downloading {file} from {repo}: {source}")]
    Hub { repo: String, file: String, source: Box<hf_hub::api::sync::ApiError> },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: sha256 is {actual}, expected {expected}; nothing was installed")]
    Checksum { path: PathBuf, expected: String, actual: String },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io { path: path.to_path_buf(), source }
}

/// Fetch `file` of `repo` at `revision` into `dest`, returning the installed path.
pub fn fetch_from_hub(
    repo: &str,
    file: &str,
    revision: &str,
    dest: &Path,
    sha256: Option<&str>,
) -> Result<PathBuf, FetchError> {
    let hub_error = |source| FetchError::Hub { repo: repo.into(), file: file.into(), source: Box::new(source) };
    let api = ApiBuilder::from_env().with_progress(true).build().map_err(hub_error)?;
    let cached = api
        .repo(Repo::with_revision(repo.to_string(), RepoType::Model, revision.to_string()))
        .get(file)
        .map_err(hub_error)?;
    if let Some(expected) = sha256 {
        let actual = sha256_of(&cached)?;
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(FetchError::Checksum { path: cached, expected: expected.into(), actual });
        }
    }
    std::fs::create_dir_all(dest).map_err(io_error(dest))?;
    let name = Path::new(file).file_name().unwrap_or(file.as_ref());
    let target = dest.join(name);
    let partial = dest.join(format!("{}.tmp", name.to_string_lossy()));
    std::fs::copy(&cached, &partial).map_err(io_error(&partial))?;
    std::fs::rename(&partial, &target).map_err(io_error(&target))?;
    Ok(target)
}

fn sha256_of(path: &Path) -> Result<String, FetchError> {
    let mut file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io_error(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}
