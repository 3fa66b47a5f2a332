//! Pre-registering many bench hosts straight into the server's database.

use std::io::Write;
use std::path::Path;

use server::store::{Store, Synchronous};

use crate::error::{Error, Result};

/// Creates hosts `PREFIX0001`… with fresh tokens hashed at `cost` and writes `name<TAB>token`
/// lines to `tokens`. With `shared_token`, every host gets the same token and one bcrypt hash:
/// a join still costs one full verification at `cost` (the server remembers verified tokens
/// per host), but registering 1000 hosts at cost 12 no longer takes minutes.
pub fn register(
    database: &Path,
    count: usize,
    cost: u32,
    prefix: &str,
    tokens: &Path,
    shared_token: bool,
) -> Result<()> {
    let store = Store::open(database, Synchronous::Normal)?;
    let secrets: Vec<(String, String)> = if shared_token {
        let token = server::auth::generate_token()?;
        let hash = server::auth::hash_secret(&token, cost)?;
        vec![(token, hash); count]
    } else {
        hash_in_parallel(count, cost)?
    };
    let now = common::time::now_unix();
    let mut out = String::new();
    for (i, (token, hash)) in secrets.iter().enumerate() {
        let name = format!("{prefix}{:04}", i + 1);
        store.create_host(&name, hash, now)?;
        out.push_str(&format!("{name}\t{token}\n"));
    }
    let io = |source| Error::Io {
        path: tokens.to_owned(),
        source,
    };
    std::fs::File::create(tokens)
        .and_then(|mut f| f.write_all(out.as_bytes()))
        .map_err(io)?;
    Ok(())
}

/// `count` fresh tokens and their hashes, on every CPU.
fn hash_in_parallel(count: usize, cost: u32) -> Result<Vec<(String, String)>> {
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let per_thread = count.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..count)
            .step_by(per_thread)
            .map(|start| {
                let n = per_thread.min(count - start);
                scope.spawn(move || -> Result<Vec<(String, String)>> {
                    (0..n)
                        .map(|_| {
                            let token = server::auth::generate_token()?;
                            let hash = server::auth::hash_secret(&token, cost)?;
                            Ok((token, hash))
                        })
                        .collect()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| Error::Setup("a hashing thread panicked".into()))??;
            all.extend(part);
        }
        Ok(all)
    })
}
