//! A throw-away certificate authority for a private network namespace:
//! certificates for server names signed by it (or self-signed, to be
//! refused), as `<name>.crt` and `<name>.key`, where lilt and Prosody look
//! them up in a `certificates` directory. Shared by `bench s2s` and the
//! federation tests (`tests/s2s_support`, which include this file by
//! path): it depends on `std` and `rcgen` only.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes the CA (`ca.pem`) and a certificate for each of `names` into
/// `dir`; those also in `self_signed` are not signed by the CA. Returns the
/// CA file.
pub fn make_certificates(
    dir: &Path,
    names: &[&str],
    self_signed: &[&str],
) -> Result<PathBuf, String> {
    let e = |e: rcgen::Error| format!("certificates: {e}");
    let ca_key = rcgen::KeyPair::generate().map_err(e)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "lilt federation test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(e)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Valid from yesterday for 30 days: ejabberd's pkix sets a timer for
    // the expiry, which Erlang refuses for rcgen's default (year 4096).
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    let day = Duration::from_secs(86_400);
    let save = |p: PathBuf, text: String| {
        std::fs::write(&p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    for name in names {
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(e)?;
        params.not_before = now - day;
        params.not_after = now + 30 * day;
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = if self_signed.contains(name) {
            params.self_signed(&key).map_err(e)?
        } else {
            params.signed_by(&key, &ca).map_err(e)?
        };
        save(dir.join(format!("{name}.crt")), cert.pem())?;
        save(dir.join(format!("{name}.key")), key.serialize_pem())?;
    }
    let ca_file = dir.join("ca.pem");
    save(ca_file.clone(), ca.pem())?;
    Ok(ca_file)
}
