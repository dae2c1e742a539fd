//! Keys, values, bounds and validation of fleet pins.

use super::*;

const P: &str = "/overload-guard/f1/pins/";

fn value(stage: PinStage) -> PinValue {
    PinValue {
        v: VALUE_VERSION,
        stage,
        pps: None,
        burst: None,
        rate_bps: None,
        burst_bytes: None,
        author: "alice (uid 1000 euid 0) on upf-1".into(),
        comment: "ticket 4711".into(),
        created_unix_ms: 1_000_000,
        expires_unix_ms: 1_060_000,
    }
}

#[test]
fn keys_round_trip_in_one_canonical_spelling() {
    for t in [
        PinTarget::Ue("10.45.0.7".parse().unwrap()),
        PinTarget::Ue("2001:db8::7".parse().unwrap()),
        PinTarget::UePrefix("10.45.1.0/24".parse().unwrap()),
        PinTarget::UePrefix("2001:db8:1::/56".parse().unwrap()),
        PinTarget::Gnb("192.0.2.10".parse().unwrap()),
    ] {
        let key = t.key("f1");
        assert!(key.starts_with(P), "{key}");
        assert_eq!(PinTarget::parse_suffix(key.strip_prefix(P).unwrap()), Ok(t), "{key}");
    }
    assert_eq!(PinTarget::Ue("10.45.0.7".parse().unwrap()).key("f1"), "/overload-guard/f1/pins/ue/10.45.0.7");
    assert_eq!(
        PinTarget::UePrefix("10.45.1.0/24".parse().unwrap()).key("f1"),
        "/overload-guard/f1/pins/ue-prefix/10.45.1.0/24"
    );
    // Another spelling of the same target is refused, not treated as a second pin.
    assert!(PinTarget::parse_suffix("ue/2001:0db8::7").is_err());
    assert!(PinTarget::parse_suffix("teid/0x1f00").is_err(), "a TEID is never a fleet key");
    assert!(PinTarget::parse_suffix("ue").is_err());
    assert!(PinTarget::parse_suffix("ue/not-an-ip").is_err());
}

#[test]
fn targets_are_checked() {
    let bad = |s: &str| PinTarget::parse_suffix(s).expect_err(s);
    assert!(bad("ue-prefix/10.45.1.1/24").contains("host bits"));
    assert!(bad("ue-prefix/10.0.0.0/16").contains("more than 1024"));
    assert!(bad("ue-prefix/10.45.1.7/32").contains("--ue"));
    assert!(bad("ue/0.0.0.0").contains("unicast"));
    assert!(bad("gnb/224.0.0.1").contains("unicast"));
    assert!(PinTarget::parse_suffix("ue-prefix/10.44.0.0/22").is_ok(), "a /22 is the widest IPv4 prefix");
}

#[test]
fn prefixes_expand_to_the_data_planes_device_keys() {
    let t = PinTarget::UePrefix("10.45.1.0/30".parse().unwrap());
    let keys = t.device_keys(64).unwrap();
    assert_eq!(keys.len(), 4);
    assert_eq!(keys[2], ue_device_key("10.45.1.2".parse().unwrap(), 64).unwrap());
    // IPv6: /62 over /64 devices is four devices; a /80 is inside one device.
    let t6 = PinTarget::UePrefix("2001:db8:0:4::/62".parse().unwrap());
    let k6 = t6.device_keys(64).unwrap();
    assert_eq!(k6.len(), 4);
    assert_eq!(k6[3], ue_device_key("2001:db8:0:7::1".parse().unwrap(), 64).unwrap());
    let inner = PinTarget::UePrefix("2001:db8:0:4:1::/80".parse().unwrap()).device_keys(64).unwrap();
    assert_eq!(inner, vec![ue_device_key("2001:db8:0:4::9".parse().unwrap(), 64).unwrap()]);
    // Too wide for this member's device prefix: refused, not truncated.
    assert!(PinTarget::UePrefix("2001:db8::/48".parse().unwrap()).device_keys(64).is_err());
    assert_eq!(PinTarget::UePrefix("2001:db8::/48".parse().unwrap()).device_keys(56).unwrap().len(), 256);
    assert!(PinTarget::UePrefix("2001:db8::/48".parse().unwrap()).device_keys(59).is_err());
    assert_eq!(PinTarget::UePrefix("2001:db8::/48".parse().unwrap()).device_keys(58).unwrap().len(), 1024);
    assert!(PinTarget::Gnb("192.0.2.1".parse().unwrap()).device_keys(64).unwrap().is_empty());
}

#[test]
fn values_decode_and_are_bounded() {
    let t = PinTarget::Ue("10.45.0.7".parse().unwrap());
    let key = t.key("f1");
    let v = value(PinStage::Quarantine);
    assert_eq!(decode(P, key.as_bytes(), &v.encode(), 4096), Ok((t, v.clone())));

    let oversized = vec![b' '; 5000];
    assert_eq!(decode(P, key.as_bytes(), &oversized, 4096), Err(PinError::Oversized { len: 5000, max: 4096 }));
    let e = decode(P, key.as_bytes(), b"{not json", 4096).unwrap_err();
    assert_eq!(e.label(), "malformed", "{e}");
    let e = decode(P, key.as_bytes(), br#"{"v":1,"stage":"quarantine","extra":1}"#, 4096).unwrap_err();
    assert_eq!(e.label(), "malformed", "{e}");
    let e = decode("/overload-guard/f2/pins/", key.as_bytes(), &v.encode(), 4096).unwrap_err();
    assert_eq!(e.label(), "bad_key");
    let e = decode(P, b"/overload-guard/f1/pins/ue/\xff", &v.encode(), 4096).unwrap_err();
    assert_eq!(e.label(), "bad_key");
}

#[test]
fn value_rules() {
    let ue = PinTarget::Ue("10.45.0.7".parse().unwrap());
    let gnb = PinTarget::Gnb("192.0.2.10".parse().unwrap());
    let check = |v: &PinValue, t: &PinTarget| v.check(t);
    assert!(check(&value(PinStage::Shape), &ue).is_ok(), "a device's shape may use the ladder's rate");
    assert!(check(&value(PinStage::Shape), &gnb).unwrap_err().contains("needs pps"));
    assert!(check(&PinValue { pps: Some(5000), ..value(PinStage::Shape) }, &gnb).is_ok());
    assert!(check(&value(PinStage::Quarantine), &gnb).is_ok());
    assert!(check(&PinValue { pps: Some(1), ..value(PinStage::Quarantine) }, &ue).is_err());
    assert!(check(&PinValue { pps: Some(0), ..value(PinStage::Strict) }, &ue).is_err());
    assert!(check(&PinValue { v: 2, ..value(PinStage::Strict) }, &ue).unwrap_err().contains("version"));
    assert!(check(&PinValue { author: String::new(), ..value(PinStage::Strict) }, &ue).is_err());
    assert!(check(&PinValue { comment: "x".repeat(MAX_COMMENT + 1), ..value(PinStage::Strict) }, &ue).is_err());
    assert!(check(&PinValue { expires_unix_ms: 1_000_000, ..value(PinStage::Strict) }, &ue).is_err());
    let long = PinValue { expires_unix_ms: 1_000_000 + MAX_TTL_MS + 1, ..value(PinStage::Strict) };
    assert!(check(&long, &ue).is_err());
    let v = value(PinStage::Strict);
    assert_eq!(v.remaining_ms(1_000_000), Some(60_000));
    assert_eq!(v.remaining_ms(1_060_000), None);
    assert_eq!(v.remaining_ms(2_000_000), None);
    // Created a year from now: still at most its own minute of life, not a year and a minute.
    let year_ms = 365 * 24 * 3600 * 1000;
    let future = PinValue { created_unix_ms: 1_000_000 + year_ms, expires_unix_ms: 1_060_000 + year_ms, ..v.clone() };
    assert!(check(&future, &ue).is_ok());
    assert_eq!(future.remaining_ms(1_000_000), Some(60_000));
}

#[test]
fn the_largest_legal_value_fits_the_default_size_bound() {
    let v = PinValue {
        pps: Some(u64::MAX),
        burst: Some(u64::MAX),
        rate_bps: Some(MAX_RATE_BPS),
        burst_bytes: Some(MAX_BURST_BYTES),
        author: "a".repeat(MAX_AUTHOR),
        comment: "\u{1F600}".repeat(MAX_COMMENT / 4),
        ..value(PinStage::Strict)
    };
    assert!(v.check(&PinTarget::Ue("10.45.0.7".parse().unwrap())).is_ok());
    assert!(v.encode().len() <= 4096, "{} bytes", v.encode().len());
}

#[test]
fn a_tmsi_pin_is_an_n2_back_off_in_one_spelling_and_takes_only_that_stage() {
    let k = guard_common::abi_n2::N2DeviceKey::five_g_s_tmsi(1, 1, 0xc000_0002);
    let t = PinTarget::Tmsi(k);
    assert_eq!(t.key("f1"), "/overload-guard/f1/pins/tmsi/5g-s-tmsi:1:1:0xc0000002");
    assert_eq!(PinTarget::parse_suffix("tmsi/5g-s-tmsi:1:1:0xc0000002"), Ok(t));
    assert_eq!(t.device_keys(64), Ok(Vec::new()), "no N3 device");
    for bad in ["tmsi/5g-s-tmsi:1:1:0xC0000002", "tmsi/5g-s-tmsi:1:1:2", "tmsi/ran-ue:10.0.0.1:7", "tmsi/"] {
        assert!(PinTarget::parse_suffix(bad).is_err(), "{bad}");
    }
    assert_eq!(value(PinStage::Backoff).check(&t), Ok(()));
    for stage in [PinStage::Quarantine, PinStage::Shape, PinStage::Strict] {
        assert!(value(stage).check(&t).is_err(), "{stage:?} on a 5G-S-TMSI");
    }
    let ue = PinTarget::Ue("10.45.0.7".parse().unwrap());
    assert!(value(PinStage::Backoff).check(&ue).is_err(), "backoff is N2's only");
    let mut v = value(PinStage::Backoff);
    v.pps = Some(10);
    assert!(v.check(&t).is_err(), "no rate on a back-off");
    let json = String::from_utf8(value(PinStage::Backoff).encode()).unwrap();
    assert!(json.contains("\"stage\":\"backoff\""), "{json}");
    let key = t.key("f1");
    assert!(decode(P, key.as_bytes(), json.as_bytes(), 4096).is_ok());
}

#[test]
fn a_byte_rate_round_trips_and_is_bounded_and_old_values_still_read() {
    let ue = PinTarget::Ue("10.45.0.7".parse().unwrap());
    let gnb = PinTarget::Gnb("192.0.2.10".parse().unwrap());
    let key = ue.key("f1");
    // Encoded as two plain numbers, read back as written.
    let v = PinValue { rate_bps: Some(5_000_000), burst_bytes: Some(62_500), ..value(PinStage::Shape) };
    let json = String::from_utf8(v.encode()).unwrap();
    assert!(json.contains(r#""rate_bps":5000000,"burst_bytes":62500"#), "{json}");
    assert_eq!(decode(P, key.as_bytes(), json.as_bytes(), 4096), Ok((ue, v)));
    // A value written before byte pins (no such fields) is still read, as no byte rate asked for;
    // one without a byte rate is still written without the fields, so older members read it.
    let old = br#"{"v":1,"stage":"strict","pps":10,"burst":20,"author":"a","comment":"c","created_unix_ms":1000000,"expires_unix_ms":1060000}"#;
    let (_, got) = decode(P, key.as_bytes(), old, 4096).expect("an old value");
    assert_eq!((got.pps, got.rate_bps, got.burst_bytes), (Some(10), None, None));
    assert!(!String::from_utf8(value(PinStage::Strict).encode()).unwrap().contains("rate_bps"));
    // Bounds, refused on read as `invalid` (logged and counted by the member, which goes on).
    let refused = |v: PinValue, t: &PinTarget| {
        let e = decode(P, t.key("f1").as_bytes(), &v.encode(), 4096).expect_err("refused");
        assert_eq!(e.label(), "invalid", "{e}");
        e.to_string()
    };
    let rated = |r: Option<u64>, b: Option<u64>| PinValue { rate_bps: r, burst_bytes: b, ..value(PinStage::Strict) };
    assert!(refused(rated(Some(MIN_RATE_BPS - 1), None), &ue).contains("rate_bps"));
    assert!(refused(rated(Some(MAX_RATE_BPS + 1), None), &ue).contains("rate_bps"));
    assert!(refused(rated(Some(1_000_000), Some(MAX_BURST_BYTES + 1)), &ue).contains("burst_bytes"));
    assert!(refused(rated(None, Some(1500)), &ue).contains("needs a rate_bps"), "a burst alone");
    assert!(refused(rated(Some(0), Some(1500)), &ue).contains("needs a rate_bps"), "a burst of no rate");
    let q = PinValue { rate_bps: Some(1_000_000), ..value(PinStage::Quarantine) };
    assert!(refused(q, &ue).contains("quarantine takes no"));
    // At the bounds: accepted; 0 is "no byte rate" (a local `--rate 0`).
    for (r, b) in [(MIN_RATE_BPS, None), (MAX_RATE_BPS, Some(MAX_BURST_BYTES)), (0, None)] {
        assert_eq!(rated(Some(r), b).check(&ue), Ok(()), "{r} {b:?}");
    }
    // pps 0 only beside a byte rate (the byte rate alone), as `guard device pin --pps 0 --rate`.
    assert!(PinValue { pps: Some(0), ..rated(Some(1_000_000), None) }.check(&ue).is_ok());
    assert!(refused(PinValue { pps: Some(0), ..rated(Some(0), None) }, &ue).contains("pps must be > 0"));
    // A gNB's shape or strict takes a byte rate instead of a packet rate.
    assert!(PinValue { rate_bps: Some(200_000_000), ..value(PinStage::Shape) }.check(&gnb).is_ok());
    assert!(refused(PinValue { rate_bps: Some(0), ..value(PinStage::Shape) }, &gnb).contains("needs pps or rate_bps"));
    // A malformed rate (not a number) is malformed, as any other field.
    let bad = br#"{"v":1,"stage":"strict","rate_bps":"5Mbit/s","author":"a","comment":"c","created_unix_ms":1000000,"expires_unix_ms":1060000}"#;
    assert_eq!(decode(P, key.as_bytes(), bad, 4096).unwrap_err().label(), "malformed");
}
