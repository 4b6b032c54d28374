//! `callback-host queue`: the after-callback queue of a stopped host (its file) or of running
//! ones (their Redis stream).

use std::io::Write as _;

use super::{ConfigFile, runtime};
use crate::QueueAction;

pub fn queue(action: QueueAction, config: &ConfigFile) -> anyhow::Result<()> {
    let config = config.load()?;
    runtime()?.block_on(async {
        let queue = callback_host::queue::Admin::open(&config.queue).await?;
        let mut out = std::io::stdout();
        match action {
            QueueAction::Stats => {
                let (depth, oldest, dead) = queue.stats().await?;
                writeln!(out, "events: {depth}")?;
                if let Some(age) = oldest {
                    writeln!(out, "oldest: {:.1} s", age.as_secs_f64())?;
                }
                writeln!(out, "dead letters: {dead}")?;
            }
            QueueAction::DeadLetters => {
                for (id, letter) in queue.dead_letters().await? {
                    writeln!(
                        out,
                        "{id} {} operationID={} failures={} cause: {}",
                        letter.event.command,
                        letter.event.operation_id,
                        letter.event.failures,
                        letter.cause
                    )?;
                }
            }
            QueueAction::Requeue => {
                writeln!(out, "requeued {} dead letters", queue.requeue(None).await?)?
            }
            QueueAction::Purge => writeln!(
                out,
                "deleted {} dead letters",
                queue.purge_dead_letters().await?
            )?,
        }
        Ok(())
    })
}
