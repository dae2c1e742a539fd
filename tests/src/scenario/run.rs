//! The runner of one mode: a fresh lab, the guard started and attached (guard modes), the
//! schedule sent slot by slot, the sink read, stages sampled, and everything removed at the end.

use super::*;

/// Wait (at most 30 s) until the guard's XDP program is on the lab's core interface and its maps
/// are pinned; fails with the guard's log tail if it exits or does not attach.
pub fn wait_attached(g: &mut GuardProc, lab: &Lab) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(ch) = g.child.as_mut() {
            if let Some(st) = ch.try_wait()? {
                bail!("guard exited during start-up ({st}):\n{}", g.log_tail());
            }
        }
        let attached =
            lab.core.ip(&["link", "show", "dev", lab.core_ifname()]).map(|s| s.contains("xdp")).unwrap_or(false);
        if attached && N3Maps::open_pinned(&g.pins()).is_ok() {
            return Ok(());
        }
        if Instant::now() > end {
            bail!("the guard did not attach within 30 s:\n{}", g.log_tail());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `sc` (as planned in `plan`) once in `mode`.
pub fn run_mode(sc: &Scenario, plan: &Plan, mode: Mode, opts: &RunOpts) -> Result<RunResult> {
    run_mode_captured(sc, plan, mode, opts, None)
}

/// [`run_mode`], with dumpcap on the RAN side of the lab's veth writing every frame to
/// `capture` (pcapng) when given: everything the RAN sent, before the guard saw it (`guard
/// replay`'s tests, issue 21).
pub fn run_mode_captured(
    sc: &Scenario,
    plan: &Plan,
    mode: Mode,
    opts: &RunOpts,
    capture: Option<&Path>,
) -> Result<RunResult> {
    let dir = opts.out.join(&sc.name).join(mode.name());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    // Declared before the guard so it is dropped after it: `guard detach` needs the namespace.
    let lab =
        Lab::builder().gnbs(plan.gnbs).core_addrs(&plan.n3_addrs()).build().context("building the lab topology")?;
    let templates = plan.templates(&lab);
    let bases = plan.bases(&lab);
    let mut dumpcap = match capture {
        Some(p) => Some(crate::capture::Dumpcap::start(&lab.ran, lab.ran_ifname(), p)?),
        None => None,
    };
    let mut guard: Option<GuardProc> = None;
    let mut maps: Option<N3Maps> = None;
    let mut naive_caps = Vec::new();
    let (mut config_path, mut audit_path) = (None, None);
    let onset = sc.onset(plan).unwrap_or(sc.duration_s);
    if mode != Mode::Off {
        let pin_base = PathBuf::from(format!("/sys/fs/bpf/og-lab-{}", unique_name("r")));
        let audit = std::fs::canonicalize(&dir)?.join("audit.jsonl");
        let _ = std::fs::remove_file(&audit);
        let port = 20_000 + (std::process::id() % 20_000) as u16 + (mode as u16) * 7;
        let cfg = dir.join("guard.toml");
        std::fs::write(&cfg, guard_config_text(sc, mode, lab.core_ifname(), &pin_base, &audit, port)?)?;
        let log = dir.join("guard.log");
        let _ = std::fs::remove_file(&log);
        register_run(&pin_base, None);
        let mut g = GuardProc {
            bin: opts.guard_bin.clone(),
            netns: lab.core_ns_name().to_owned(),
            iface: lab.core_ifname().to_owned(),
            config: cfg.clone(),
            pin_base,
            log,
            child: None,
            done: false,
        };
        match mode {
            Mode::Guard => {
                let dur = format!("{}", sc.duration_s + 15.0);
                g.child = Some(g.start(&["--duration", &dur])?);
                let r = wait_attached(&mut g, &lab);
                guard = Some(g);
                r?;
            }
            Mode::NaiveCellCap => {
                let mut ch = g.start(&["--no-controller"])?;
                let st = wait_timeout(&mut ch, Duration::from_secs(30))?;
                guard = Some(g);
                let g = guard.as_mut().expect("just set");
                if !st {
                    bail!("guard run --no-controller failed:\n{}", g.log_tail());
                }
                let mut m = N3Maps::open_pinned(&g.pins()).context("opening the pinned maps")?;
                // The cap per gNB: cap_factor × its normal G-PDU rate before the onset.
                let normal = plan.gpdu_pps_per_gnb(0.0, onset.max(1.0));
                for (i, pps) in normal.iter().enumerate() {
                    let cap = (pps * sc.naive.cap_factor).ceil().max(1.0) as u64;
                    let burst = ((cap as f64) * sc.naive.burst_ms / 1000.0).ceil().max(1.0) as u64;
                    let o = lab.gnb_v4[i].octets();
                    m.set_cell_stage(&L3Addr::v4(o), &crate::bpf::cell_cap_entry(cap, burst, 3_600_000_000_000))?;
                    naive_caps.push(cap);
                }
                maps = Some(m);
            }
            Mode::Off => {}
        }
        if let Some(g) = guard.as_ref() {
            if maps.is_none() {
                maps = Some(N3Maps::open_pinned(&g.pins()).context("opening the pinned maps")?);
            }
        }
        config_path = Some(cfg);
        audit_path = Some(audit);
    }
    let guard_pid = guard.as_ref().and_then(|g| g.child.as_ref()).map(|c| c.id());
    let guard_t0 = Instant::now();
    if opts.verbose {
        eprintln!("lab: {} / {}: {} devices, {:.0} s", sc.name, mode.name(), plan.devices.len(), plan.duration_s());
    }

    let sink = Sink::start_with(
        &lab.core,
        lab.core_ifname(),
        crate::SinkOpts { by_fteid: true, marked: crate::variants::forged_prefixes(), ..crate::SinkOpts::default() },
    )?;
    let nslots = plan.slots.len();
    let mut res = RunResult {
        scenario: sc.name.clone(),
        mode,
        sent: vec![[0; 2]; nslots],
        delivered: vec![[0; 2]; nslots],
        scheduled: vec![[0; 2]; nslots],
        device_sent: vec![0; plan.devices.len()],
        device_delivered: vec![0; plan.devices.len()],
        device_sent_later: vec![0; plan.devices.len()],
        device_delivered_later: vec![0; plan.devices.len()],
        pop_sent: BTreeMap::new(),
        pop_delivered: BTreeMap::new(),
        pop_scheduled: BTreeMap::new(),
        unsent: 0,
        stages: Vec::new(),
        staged: BTreeSet::new(),
        local_addrs: BTreeMap::new(),
        forged_sent: vec![0; nslots],
        forged_delivered: vec![0; nslots],
        device_forged_sent: vec![0; plan.devices.len()],
        device_forged_delivered: vec![0; plan.devices.len()],
        audit: Vec::new(),
        dataplane_events: BTreeMap::new(),
        guard_cpu_s: None,
        guard_wall_s: None,
        naive_caps_pps: naive_caps,
        dataplane: None,
        sink_kernel_drops: 0,
        wall_s: 0.0,
        config_path,
        audit_path: audit_path.clone(),
        audit_found: false,
    };
    if let Some(m) = maps.as_ref() {
        // Index → address of the F-TEIDs in the stage map and the audit log.
        let t = m.local_table().context("reading the guard's N3 address table")?;
        for (i, a, _) in t.listed() {
            if let IpAddr::V4(a) = a {
                res.local_addrs.insert(i, a);
            }
        }
    }
    let mut acct = Delivered::new();
    let mut fst = FrameState::default();
    let mut deltas: Vec<DeliveredDelta> = Vec::new();
    for d in &plan.devices {
        res.pop_sent.entry(d.population.clone()).or_insert_with(|| vec![[0; 2]; nslots]);
        res.pop_delivered.entry(d.population.clone()).or_insert_with(|| vec![[0; 2]; nslots]);
        res.pop_scheduled.entry(d.population.clone()).or_insert_with(|| vec![[0; 2]; nslots]);
    }
    let slot = Duration::from_millis(SLOT_MS);
    let cpu0 = guard_pid.and_then(proc_cpu_s);
    let mut cpu_last = cpu0;
    let wall0 = SystemTime::now();
    let t0 = Instant::now();
    for (i, s) in plan.slots.iter().enumerate() {
        let (frames, vars) = slot_frames(plan, &templates, &bases, i, s, &mut fst);
        for tag in &vars {
            let v = plan.variants[tag.var as usize];
            let d = &plan.devices[v.device];
            if tag.forged {
                res.scheduled[i][Class::Attack.idx()] += 1;
                continue;
            }
            res.scheduled[i][d.segments[v.segment].class.idx()] += 1;
            if let Some(p) = res.pop_scheduled.get_mut(&d.population) {
                p[i][usize::from(tag.later)] += 1;
            }
        }
        let start = t0 + slot * i as u32;
        let now = Instant::now();
        if start > now {
            std::thread::sleep(start - now);
        }
        if !frames.is_empty() {
            let end = t0 + slot * (i as u32 + 1);
            let deadline = end.saturating_duration_since(Instant::now()).max(Duration::from_millis(20));
            // Paced over 90% of what is left of the slot, not of a whole slot: one that starts
            // late (the last slot's sink accounting ran over) still offers its frames within it.
            let left_ms = u64::try_from(deadline.as_millis()).unwrap_or(SLOT_MS).clamp(1, SLOT_MS);
            let pps = (frames.len() as u64 * 1000 / (left_ms * 9 / 10).max(1)).max(100);
            let rep = send_frames(
                &lab.ran,
                lab.ran_ifname(),
                &frames,
                &SendOpts::new(frames.len() as u64, deadline).pps(pps).cpu(sc.sender_cpu),
            )
            .with_context(|| format!("sending slot {i}"))?;
            for (fi, &n) in rep.per_frame.iter().enumerate() {
                if n > 0 {
                    let tag = vars[fi];
                    let v = plan.variants[tag.var as usize];
                    let d = &plan.devices[v.device];
                    if let Some(o) = fst.own_sent.get_mut(v.device) {
                        *o |= tag.own;
                    }
                    if tag.forged {
                        // Attack traffic of its own, never the device's (its real G-PDUs are).
                        res.forged_sent[i] += n;
                        res.device_forged_sent[v.device] += n;
                        res.sent[i][Class::Attack.idx()] += n;
                        continue;
                    }
                    res.device_sent[v.device] += n;
                    if tag.later {
                        res.device_sent_later[v.device] += n;
                    }
                    res.sent[i][d.segments[v.segment].class.idx()] += n;
                    if let Some(p) = res.pop_sent.get_mut(&d.population) {
                        p[i][usize::from(tag.later)] += n;
                    }
                }
            }
            res.unsent += frames.len() as u64 - rep.sent;
        }
        let t_s = (i + 1) as f64 / SLOTS_PER_SEC as f64;
        let snap = sink.snapshot();
        deltas.clear();
        res.delivered[i] = acct.take(plan, &snap, &fst.frag_owner, t_s - 0.05, &mut deltas);
        add_delivered(plan, &deltas, i, &mut res);
        if i % 5 == 4 {
            if let Some(m) = maps.as_ref() {
                res.stages.push(sample_stages(m, t_s, &res.local_addrs, &mut res.staged));
            }
            if let Some(c) = guard_pid.and_then(proc_cpu_s) {
                cpu_last = Some(c);
            }
        }
    }
    sink.wait_quiet(Duration::from_millis(200), Duration::from_secs(3));
    if let Some(d) = dumpcap.as_mut() {
        d.stop();
    }
    let rep = sink.stop()?;
    let last = nslots.saturating_sub(1);
    deltas.clear();
    let tail = acct.take(plan, &rep, &fst.frag_owner, plan.duration_s() - 0.05, &mut deltas);
    add_delivered(plan, &deltas, last, &mut res);
    res.delivered[last][0] += tail[0];
    res.delivered[last][1] += tail[1];
    res.sink_kernel_drops = rep.kernel_drops;
    if let Some(m) = maps.as_ref() {
        res.stages.push(sample_stages(m, plan.duration_s(), &res.local_addrs, &mut res.staged));
    }
    if let Some(c) = guard_pid.and_then(proc_cpu_s) {
        cpu_last = Some(c);
    }
    if mode == Mode::Guard {
        res.guard_cpu_s = cpu_last;
        res.guard_wall_s = Some(guard_t0.elapsed().as_secs_f64());
        let _ = cpu0;
    }
    res.dataplane = maps.as_ref().map(read_dataplane);
    drop(maps);
    if let Some(mut g) = guard.take() {
        g.finish()?;
    }
    if let Some(a) = audit_path {
        res.audit_found = a.is_file();
        (res.audit, res.dataplane_events) = read_audit(&a, wall0);
    }
    drop(lab);
    write_devices_csv(&dir.join("devices.csv"), plan, &res)?;
    res.wall_s = started.elapsed().as_secs_f64();
    Ok(res)
}

/// Per-device and per-population delivered counts of one slot.
fn add_delivered(plan: &Plan, deltas: &[DeliveredDelta], slot: usize, res: &mut RunResult) {
    for &(dev, n, what) in deltas {
        if what == Counted::Forged {
            if let Some(x) = res.forged_delivered.get_mut(slot) {
                *x += n;
            }
            res.device_forged_delivered[dev] += n;
            continue;
        }
        let later = what == Counted::Later;
        res.device_delivered[dev] += n;
        if later {
            res.device_delivered_later[dev] += n;
        }
        if let Some(p) = res.pop_delivered.get_mut(&plan.devices[dev].population).and_then(|v| v.get_mut(slot)) {
            p[usize::from(later)] += n;
        }
    }
}

/// What the generator actually sent and the sink counted, per device, for one run.
fn write_devices_csv(path: &Path, plan: &Plan, res: &RunResult) -> Result<()> {
    let staged: BTreeSet<usize> = res
        .staged
        .iter()
        .filter_map(|k| plan.by_fteid.get(k).copied())
        .chain(
            res.audit
                .iter()
                .filter(|a| a.action == "set_device_stage" && !a.exempt)
                .filter_map(|a| res.device_of_target(plan, &a.target)),
        )
        .collect();
    let mut out = String::from(
        "device,population,class,gnb,n3,teid,ue,sent,delivered,staged,later_fragments_sent,later_fragments_delivered,forged_sent,forged_delivered\n",
    );
    for d in &plan.devices {
        let class = match d.class {
            Class::Benign => "benign",
            Class::Attack => "attack",
        };
        out.push_str(&format!(
            "{},{},{class},{},{},{:#010x},{},{},{},{},{},{},{},{}\n",
            d.label(),
            d.population,
            d.gnb,
            d.n3,
            d.teid,
            d.ue_str(),
            res.device_sent[d.idx],
            res.device_delivered[d.idx],
            d.edge.is_none() && staged.contains(&d.idx),
            res.device_sent_later.get(d.idx).copied().unwrap_or(0),
            res.device_delivered_later.get(d.idx).copied().unwrap_or(0),
            res.device_forged_sent.get(d.idx).copied().unwrap_or(0),
            res.device_forged_delivered.get(d.idx).copied().unwrap_or(0),
        ));
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

fn wait_timeout(ch: &mut Child, t: Duration) -> Result<bool> {
    let end = Instant::now() + t;
    loop {
        if let Some(st) = ch.try_wait()? {
            return Ok(st.success());
        }
        if Instant::now() > end {
            let _ = ch.kill();
            let _ = ch.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
