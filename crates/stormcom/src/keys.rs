//! Keys kept in the data dir, outside the database: generated on first use with mode
//! 0600, read on every start after that.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use stormcom_app::Keys;
use stormcom_domain::audit::CheckpointKey;
use stormcom_domain::sealed::MasterKey;

const MASTER_KEY_FILE: &str = "master.key";
const CHECKPOINT_KEY_FILE: &str = "audit-signing.key";

fn read_or_create(path: &Path, create: impl FnOnce() -> anyhow::Result<String>) -> anyhow::Result<String> {
    if path.exists() {
        return std::fs::read_to_string(path).with_context(|| format!("cannot read key file {}", path.display()));
    }
    let text = create()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())
                .with_context(|| format!("cannot write key file {}", path.display()))?;
            tracing::info!(file = %path.display(), "generated a new key");
            Ok(text)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(std::fs::read_to_string(path)?),
        Err(e) => Err(e).with_context(|| format!("cannot create key file {}", path.display())),
    }
}

pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Keys> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let master = read_or_create(&data_dir.join(MASTER_KEY_FILE), || {
        Ok(MasterKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?.to_hex())
    })?;
    let master = MasterKey::from_hex(&master).map_err(|e| anyhow::anyhow!("{MASTER_KEY_FILE}: {e}"))?;
    let checkpoint = read_or_create(&data_dir.join(CHECKPOINT_KEY_FILE), || {
        let key = CheckpointKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(key.to_bytes().iter().map(|b| format!("{b:02x}")).collect())
    })?;
    let seed: Vec<u8> = (0..checkpoint.trim().len() / 2)
        .map(|i| u8::from_str_radix(checkpoint.trim().get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("{CHECKPOINT_KEY_FILE} is not hex"))?;
    let checkpoint = CheckpointKey::from_bytes(&seed).map_err(|e| anyhow::anyhow!("{CHECKPOINT_KEY_FILE}: {e}"))?;
    Ok(Keys { master, checkpoint })
}
