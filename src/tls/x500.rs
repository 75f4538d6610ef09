//! A certificate subject as Java's `X500Principal.getName()` prints it
//! (RFC 2253): ZooKeeper's `X509AuthenticationProvider` uses that text as
//! the session's `x509` id, so ACLs written for ZooKeeper match here.
//!
//! RFC 2253 lists the RDNs last-encoded first, joins them with `,` and the
//! values of a multi-valued RDN with `+`. Attribute types RFC 2253 names get
//! their keyword; any other type is its dotted OID with the value as `#`
//! and the hex of its DER encoding (so `emailAddress` prints as
//! `1.2.840.113549.1.9.1=#16...`, as in Java).

use std::fmt::Write;

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AttributeTypeAndValue;

/// The subject of the DER certificate `der`, or why it cannot be read.
pub fn subject_name(der: &[u8]) -> Result<String, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let rdns: Vec<String> = cert
        .subject()
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(attribute_to_string)
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Ok(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// The keywords RFC 2253 defines (Java's `AVAKeyword` for RFC 2253).
fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn attribute_to_string(attr: &AttributeTypeAndValue) -> String {
    let oid = attr.attr_type().to_id_string();
    let value = attr.attr_value();
    match keyword(&oid).zip(string_value(value.tag().0, value.data)) {
        Some((name, text)) => format!("{name}={}", escape(&text)),
        None => {
            // `#` + hex of the whole DER value (tag, length, content).
            let mut out = format!("{oid}=#");
            for byte in der_tlv(value.tag().0, value.data) {
                let _ = write!(out, "{byte:02x}");
            }
            out
        }
    }
}

/// The text of a DirectoryString-like value; None for other types.
fn string_value(tag: u32, data: &[u8]) -> Option<String> {
    const UTF8: u32 = 12;
    const PRINTABLE: u32 = 19;
    const TELETEX: u32 = 20;
    const IA5: u32 = 22;
    const UNIVERSAL: u32 = 28;
    const BMP: u32 = 30;
    match tag {
        UTF8 | PRINTABLE | IA5 => std::str::from_utf8(data).ok().map(str::to_string),
        // Java reads T61String as ISO-8859-1.
        TELETEX => Some(data.iter().map(|&b| b as char).collect()),
        BMP => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        UNIVERSAL => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// Java's `AVA.toRFC2253String` escaping: `,+"\<>;` anywhere, `#` or a
/// space at the start and a space at the end get a backslash.
fn escape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let special = ",+\"\\<>;".contains(c)
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == chars.len() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Re-encodes a universal-class primitive value as DER (tag, length, content).
fn der_tlv(tag: u32, data: &[u8]) -> Vec<u8> {
    let mut out = vec![tag as u8];
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn rdns_come_last_encoded_first() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Dev");
        dn.push(rcgen::DnType::CommonName, "client");
        let name = subject_name(&cert_with(dn)).unwrap();
        assert_eq!(name, "CN=client,OU=Dev,O=Example,C=US");
    }

    #[test]
    fn specials_are_escaped() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "#a, b+c ");
        let name = subject_name(&cert_with(dn)).unwrap();
        assert_eq!(name, r"CN=\#a\, b\+c\ ");
    }

    #[test]
    fn unnamed_types_print_as_oid_and_hex() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            rcgen::DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            rcgen::DnValue::Ia5String("a@b".try_into().unwrap()),
        );
        dn.push(rcgen::DnType::CommonName, "x");
        let name = subject_name(&cert_with(dn)).unwrap();
        assert_eq!(name, "CN=x,1.2.840.113549.1.9.1=#1603614062");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(subject_name(b"not a certificate").is_err());
    }
}
