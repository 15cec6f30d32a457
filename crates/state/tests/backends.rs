//! The same behaviour from every backend: in process, and on real Redis and Valkey
//! servers (started here; `scripts/test.sh` installs them). Windows, decay and
//! expiry run on real time here, since a server's clock cannot be set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use switchyard_state::testing::KvServer;
use switchyard_state::{
    InProcess, Limits, Refused, RemoteOptions, RemoteState, SharedState, SystemClock,
};

/// Each backend under test, with the server it runs on (kept alive by the caller).
fn backends(name: &str) -> Vec<(Arc<dyn SharedState>, Option<KvServer>)> {
    let mut out: Vec<(Arc<dyn SharedState>, Option<KvServer>)> = vec![(
        Arc::new(InProcess::new(
            Arc::new(SystemClock::new()),
            Limits {
                max_keys: 1000,
                log_capacity: 3,
                ..Limits::default()
            },
        )),
        None,
    )];
    for (variable, backend) in [
        ("SWITCHYARD_REDIS_BIN", "redis"),
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
    ] {
        if let Some(server) = KvServer::from_env(variable, backend).unwrap() {
            out.push((remote(&server, name), Some(server)));
        }
    }
    out
}

fn options(server: &KvServer, prefix: &str) -> RemoteOptions {
    let mut o = RemoteOptions::new(&server.url());
    o.backend = server.backend;
    o.prefix = format!("{prefix}:");
    o.log_capacity = 3;
    o
}

fn remote(server: &KvServer, prefix: &str) -> Arc<dyn SharedState> {
    Arc::new(RemoteState::new(options(server, prefix)).unwrap())
}

fn label(server: &Option<KvServer>) -> &'static str {
    server.as_ref().map_or("in_process", |s| s.backend)
}

#[test]
fn reservations_hold_until_settled_and_windows_start_over_on_every_backend() {
    let window = Duration::from_millis(1000);
    for (s, server) in backends("windows") {
        let on = label(&server);
        let started = Instant::now();
        let a = s.reserve("tenant", 600, 1000, window).unwrap();
        match s.reserve("tenant", 600, 1000, window).unwrap_err() {
            Refused::Exhausted {
                used: 600,
                retry_after_ms,
                ..
            } => assert!(
                (1..=1000).contains(&retry_after_ms),
                "{on}: {retry_after_ms}"
            ),
            other => panic!("{on}: {other}"),
        }
        s.settle(a, 150); // shorter than reserved: 450 come back
        assert_eq!(s.counter("tenant").unwrap(), 150, "{on}");
        let b = s.reserve("tenant", 600, 1000, window).unwrap();
        assert_eq!((b.used, s.counter("tenant").unwrap()), (750, 750), "{on}");
        std::thread::sleep((window + Duration::from_millis(150)).saturating_sub(started.elapsed()));
        assert_eq!(s.counter("tenant").unwrap(), 0, "{on}: a new window");
        s.settle(b, 700); // settled late: only the overrun lands in the new window
        assert_eq!(s.counter("tenant").unwrap(), 100, "{on}");
        assert_eq!(s.counter("nobody").unwrap(), 0, "{on}");
    }
}

#[test]
fn concurrent_reservations_never_pass_the_limit_on_every_backend() {
    for (s, server) in backends("race") {
        let granted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, granted) = (Arc::clone(&s), Arc::clone(&granted));
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        if s.reserve("k", 3, 1000, Duration::from_secs(60)).is_ok() {
                            granted.fetch_add(3, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let on = label(&server);
        assert_eq!(granted.load(Ordering::SeqCst), 999, "{on}");
        assert_eq!(s.counter("k").unwrap(), 999, "{on}");
    }
}

#[test]
fn decaying_sums_halve_every_half_life_and_expire_on_every_backend() {
    let (half_life, ttl) = (Duration::from_millis(400), Duration::from_secs(60));
    for (s, server) in backends("decay") {
        let on = label(&server);
        assert_eq!(
            s.decaying_add("a", 0.0, half_life, ttl).unwrap(),
            0.0,
            "{on}"
        );
        let added = Instant::now();
        assert!(
            (s.decaying_add("a", 2.0, half_life, ttl).unwrap() - 2.0).abs() < 0.05,
            "{on}"
        );
        std::thread::sleep(half_life);
        let read = s.decaying_add("a", 0.0, half_life, ttl).unwrap();
        // Half, give or take what the calls themselves took.
        let expected = 2.0 * 0.5f64.powf(added.elapsed().as_secs_f64() / 0.4);
        assert!(
            read <= 1.0 + 1e-9 && read >= expected - 0.05,
            "{on}: {read}"
        );
        assert!(
            s.decaying_add("a", f64::NAN, half_life, ttl).unwrap() <= 1.0,
            "{on}"
        );
        // Left its ttl without additions, a sum goes.
        let short = Duration::from_millis(200);
        s.decaying_add("b", 5.0, Duration::from_secs(3600), short)
            .unwrap();
        std::thread::sleep(short + Duration::from_millis(100));
        assert_eq!(
            s.decaying_add("b", 0.0, Duration::from_secs(3600), short)
                .unwrap(),
            0.0,
            "{on}"
        );
    }
}

#[test]
fn values_expire_and_logs_keep_the_newest_entries_on_every_backend() {
    for (s, server) in backends("values") {
        let on = label(&server);
        s.put("a", Bytes::from_static(b"1"), Duration::from_millis(200))
            .unwrap();
        s.put(
            "b",
            Bytes::from_static(b"\x00\xff"),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"1"[..]), "{on}");
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(s.get("a").unwrap(), None, "{on}: expired");
        assert_eq!(
            s.get("b").unwrap().as_deref(),
            Some(&b"\x00\xff"[..]),
            "{on}"
        );
        assert!(s.delete("b").unwrap(), "{on}");
        assert_eq!(s.get("b").unwrap(), None, "{on}: deleted");
        assert!(!s.delete("b").unwrap(), "{on}: nothing left to delete");

        for i in 0..5u8 {
            assert_eq!(
                s.append("feedback", Bytes::from(vec![i])).unwrap(),
                u64::from(i),
                "{on}"
            );
        }
        let kept: Vec<u64> = s
            .read("feedback", 0, 10)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(kept, [2, 3, 4], "{on}: the oldest went");
        let one = s.read("feedback", 3, 1).unwrap();
        assert_eq!((one[0].0, one[0].1.as_ref()), (3, &[3u8][..]), "{on}");
        assert!(s.read("feedback", 9, 10).unwrap().is_empty(), "{on}");
        assert!(s.read("nothing", 0, 10).unwrap().is_empty(), "{on}");
    }
}

#[test]
fn replicas_on_one_server_share_counters_and_sums() {
    for (variable, backend) in [
        ("SWITCHYARD_REDIS_BIN", "redis"),
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
    ] {
        let Some(server) = KvServer::from_env(variable, backend).unwrap() else {
            continue;
        };
        let (one, two) = (remote(&server, "shared"), remote(&server, "shared"));
        let other = remote(&server, "other deployment");
        let held = one
            .reserve("caller", 700, 1000, Duration::from_secs(60))
            .unwrap();
        assert!(
            two.reserve("caller", 400, 1000, Duration::from_secs(60))
                .is_err()
        );
        assert!(
            other
                .reserve("caller", 400, 1000, Duration::from_secs(60))
                .is_ok()
        );
        two.settle(held, 100);
        assert_eq!(one.counter("caller").unwrap(), 100, "{backend}");
        let hour = Duration::from_secs(3600);
        one.decaying_add("rep", 1.5, hour, hour).unwrap();
        assert!((two.decaying_add("rep", 0.0, hour, hour).unwrap() - 1.5).abs() < 1e-3);
    }
}

#[test]
fn a_server_that_goes_down_is_refused_quickly_and_found_again() {
    for (variable, backend) in [
        ("SWITCHYARD_REDIS_BIN", "redis"),
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
    ] {
        let Some(mut server) = KvServer::from_env(variable, backend).unwrap() else {
            continue;
        };
        let mut o = options(&server, "outage");
        o.pause = Duration::from_millis(300);
        let s = RemoteState::new(o).unwrap();
        let minute = Duration::from_secs(60);
        s.settle(s.reserve("k", 10, 100, minute).unwrap(), 10);

        server.kill();
        let started = Instant::now();
        let failed = s.reserve("k", 10, 100, minute).unwrap_err();
        assert!(
            matches!(failed, Refused::Unavailable(_)),
            "{backend}: {failed}"
        );
        assert!(matches!(s.counter("k"), Err(Refused::Unavailable(_))));
        assert!(matches!(s.get("v"), Err(Refused::Unavailable(_))));
        assert!(
            started.elapsed() < Duration::from_millis(250),
            "{backend}: {:?}",
            started.elapsed()
        );

        // Back up, with nothing of before (no persistence) and no scripts loaded:
        // once the pause is over, operations work again.
        server.start().unwrap();
        std::thread::sleep(Duration::from_millis(350));
        let held = s.reserve("k", 10, 100, minute).unwrap();
        assert_eq!(s.counter("k").unwrap(), 10, "{backend}");
        s.settle(held, 0);
        assert_eq!(s.counter("k").unwrap(), 0, "{backend}");
    }
}

#[test]
fn a_server_that_hangs_is_paused_after_timeouts_in_a_row_and_one_late_or_wrong_answer_is_not() {
    for (variable, backend) in [
        ("SWITCHYARD_REDIS_BIN", "redis"),
        ("SWITCHYARD_VALKEY_BIN", "valkey"),
    ] {
        let Some(server) = KvServer::from_env(variable, backend).unwrap() else {
            continue;
        };
        let mut o = options(&server, "hang");
        o.timeout = Duration::from_millis(100);
        o.pause = Duration::from_millis(300);
        let s = RemoteState::new(o).unwrap();
        assert_eq!(s.counter("k").unwrap(), 0);
        let timed = |expect_try: bool| {
            let started = Instant::now();
            let failed = s.counter("k").unwrap_err();
            let took = started.elapsed();
            assert!(matches!(failed, Refused::Unavailable(_)), "{failed}");
            if expect_try {
                assert!(took >= Duration::from_millis(90), "{backend}: {took:?}");
                assert!(!failed.to_string().contains("paused"), "{failed}");
            } else {
                assert!(took < Duration::from_millis(50), "{backend}: {took:?}");
                assert!(failed.to_string().contains("paused"), "{failed}");
            }
        };
        // An error the server answers with (a key of another type) fails its own
        // operation only.
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("SET")
            .arg("hang:counter:odd")
            .arg("text")
            .query::<()>(&mut conn)
            .unwrap();
        let failed = s.counter("odd").unwrap_err();
        assert!(matches!(failed, Refused::Unavailable(_)), "{failed}");
        assert_eq!(s.counter("k").unwrap(), 0, "{backend}: not paused");
        // One late answer between answers fails its own operation only.
        server.freeze().unwrap();
        timed(true);
        server.thaw().unwrap();
        assert_eq!(s.counter("k").unwrap(), 0, "{backend}: not paused");
        // A server that stops answering is paused after timeouts in a row.
        server.freeze().unwrap();
        for _ in 0..switchyard_state::TIMEOUTS_BEFORE_PAUSE {
            timed(true);
        }
        timed(false);
        server.thaw().unwrap();
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(
            s.counter("k").unwrap(),
            0,
            "{backend}: back after the pause"
        );
    }
}

#[test]
fn a_server_that_is_down_at_start_is_unavailable_not_an_error() {
    let s = RemoteState::new(RemoteOptions::new("redis://127.0.0.1:1/0")).unwrap();
    assert!(matches!(
        s.decaying_add("k", 1.0, Duration::from_secs(1), Duration::from_secs(1)),
        Err(Refused::Unavailable(_))
    ));
    assert!(RemoteState::new(RemoteOptions::new("http://not-redis")).is_err());
}

#[test]
fn token_buckets_refill_over_time_and_never_give_more_than_they_hold_on_every_backend() {
    use switchyard_state::BucketShape;
    for (s, server) in backends("buckets") {
        let on = label(&server);
        let shape = BucketShape {
            capacity: 10.0,
            per_second: 20.0,
        };
        let full = s.take("ip", 10.0, shape).unwrap();
        assert!(
            full.remaining < 0.5 && full.full_in_ms >= 450,
            "{on}: {full:?}"
        );
        match s.take("ip", 3.0, shape).unwrap_err() {
            Refused::Exhausted { retry_after_ms, .. } => {
                assert!(
                    (100..=150).contains(&retry_after_ms),
                    "{on}: {retry_after_ms}"
                );
            }
            other => panic!("{on}: {other}"),
        }
        std::thread::sleep(Duration::from_millis(160));
        assert!(s.take("ip", 3.0, shape).is_ok(), "{on}: refilled by then");
        let back = s.give_back("ip", 100.0, shape).unwrap();
        assert_eq!(back.remaining, 10.0, "{on}: never above capacity");
        assert!(
            s.take("ip", 11.0, shape).is_err(),
            "{on}: more than it can hold"
        );

        // Racing takers get exactly what the bucket holds.
        let slow = BucketShape {
            capacity: 100.0,
            per_second: 0.001,
        };
        let granted = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, granted) = (Arc::clone(&s), Arc::clone(&granted));
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        if s.take("race", 1.0, slow).is_ok() {
                            granted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(granted.load(Ordering::SeqCst), 100, "{on}");
    }
}
