//! rust_tasks: the Rust twin of `fixtures/apps/tasks/tasks.wat`, written with this SDK.
//! Every 300 ms, three times, it puts a task `rtask-N` and then logs how many tasks it can
//! see; a watch on tasks logs each change it is told of.

use std::time::Duration;

use exocore_app::store::{self, watch_type};
use exocore_app::value::{Mutation, Trait, Value};
use exocore_app::{app, info, sleep, spawn, warn};

app!(async {
    info("rust_tasks started");
    spawn(async {
        let Ok(mut watch) = watch_type("task") else {
            return warn("cannot watch tasks");
        };
        while let Some(page) = watch.changed().await {
            match page {
                Ok(page) => info(&format!("watched: {} task(s)", page.total)),
                Err(e) => warn(&format!("watch failed: {e}")),
            }
        }
    });
    for n in 1..=3 {
        sleep(Duration::from_millis(300)).await;
        let task =
            Trait::new("t", "task").with("title", Value::String(format!("Rust reminder {n}")));
        let put = Mutation::PutTrait {
            entity: format!("rtask-{n}"),
            value: task,
        };
        if let Err(e) = store::mutate(vec![put]).await {
            warn(&format!("put failed: {e}"));
            continue;
        }
        match store::query_text("type:task").await {
            Ok(page) => info(&format!("rust tasks: {}", page.total)),
            Err(e) => warn(&format!("query failed: {e}")),
        }
    }
});
