use super::*;

fn skip(text: &str) -> Result<&str, Unexpected> {
    let mut s = Scanner::new(text.as_bytes());
    let v = s.value()?;
    Ok(std::str::from_utf8(v).expect("utf-8"))
}

#[test]
fn values_are_stepped_over_exactly() {
    for text in [
        r#""""#,
        r#""a""#,
        r#""0123456789abcdef\"0123456789""#,
        r#""\\""#,
        r#""x\\\"y""#,
        r#"{"a":[1,2,{"b":"]}"}],"c":"{"}"#,
        "[[],[[]],{}]",
        "12.5e-3",
        "true",
        "null",
    ] {
        assert_eq!(skip(&format!("{text} ,")), Ok(text), "{text}");
        assert_eq!(skip(text), Ok(text), "{text}");
    }
}

#[test]
fn long_and_escaped_containers_are_stepped_over() {
    let long = "x".repeat(70);
    for text in [
        format!(r#"{{"a":"{long}","b":[{{"c":"{long}\"]"}}],"d":"\\"}}"#),
        format!(r#"[{long:?},"{}\\",{{}}]"#, "\\".repeat(32)),
        format!(r#"{{"k":"{}\"}}","z":1}}"#, "y".repeat(57)),
        format!("[{}]", "[".repeat(40) + &"]".repeat(40)),
    ] {
        assert_eq!(skip(&format!("{text} ,")), Ok(text.as_str()), "{text}");
        let cut = &text[..text.len() - 1];
        assert_eq!(skip(cut), Err(Unexpected), "{cut}");
    }
}

#[test]
fn classes_agree_with_the_scalar_reference() {
    let text = br#"{"a\\"b":[1,{"}":"]"}],"c":"\\\\\\""}   ab[]{}""\\ {"x":["y"]}, "z\\\\" [[[ ]]] "\\\"" "#;
    for start in 0..text.len() {
        let (block, _) = block_at(text, start);
        assert_eq!(Classes::of(&block), Classes::scalar(&block), "{start}");
    }
}

#[test]
fn quotes_agree_with_the_scalar_reference() {
    let text = br#"{"a\\"b":[1,{"}":"]"}],"c":"\\\\\\""}   ab"\\ "z\\\\" "\\\"" "#;
    for start in 0..text.len() - 16 {
        let chunk = text[start..].first_chunk::<16>().unwrap();
        assert_eq!(quotes(chunk), quotes_scalar(chunk), "{start}");
    }
}

#[test]
fn keys_with_escapes_are_unexpected() {
    let key = |text: &str| {
        Scanner::new(text.as_bytes())
            .plain_key()
            .map(<[u8]>::to_vec)
    };
    assert_eq!(key(r#""name":1"#), Ok(b"name".to_vec()));
    assert_eq!(
        key(r#" "terminationMessagePolicy" :1"#),
        Ok(b"terminationMessagePolicy".to_vec())
    );
    assert_eq!(key(r#""""#), Ok(Vec::new()));
    for text in [
        r#""na\u006de":1"#,
        r#""a\"b":1"#,
        r#""terminationMessage\"Policy":1"#,
        r#""abc"#,
        r#""ab\"#,
    ] {
        assert_eq!(key(text), Err(Unexpected), "{text}");
    }
}

#[test]
fn escapes_are_found_across_blocks() {
    // A run of n backslashes ending at the end of a block, then a quote.
    for n in 1..=70 {
        let mut text = vec![b'x'; 130 - n];
        text.extend(std::iter::repeat_n(b'\\', n));
        text.push(b'"');
        let quote = text.len() - 1;
        let mut walk = Walk::default();
        let mut escaped = 0u128;
        for (k, at) in [0, 64].into_iter().enumerate() {
            let (block, _) = block_at(&text, at);
            escaped |= u128::from(walk.escaped(Classes::of(&block).backslash)) << (64 * k);
        }
        let (block, _) = block_at(&text, 128);
        let last = walk.escaped(Classes::of(&block).backslash);
        let quote_escaped = if quote >= 128 {
            last >> (quote - 128) & 1 == 1
        } else {
            escaped >> quote & 1 == 1
        };
        assert_eq!(quote_escaped, n % 2 == 1, "{n}");
    }
    assert_eq!(prefix_xor(0b1001_0000), 0b0111_0000);
}

#[test]
fn unfinished_text_is_unexpected() {
    for text in ["", "\"abc", "\"abc\\\"", "{\"a\":[1,2}", "[", "{", ":"] {
        assert_eq!(skip(text), Err(Unexpected), "{text:?}");
    }
}

#[test]
fn objects_give_their_members() {
    let text = br#" { "a" : "x" , "b":{"c":[1]}, "d": null } "#;
    let mut s = Scanner::new(text);
    let mut seen = Vec::new();
    s.object(|key, s| {
        seen.push((key.to_vec(), s.value()?.to_vec()));
        Ok(())
    })
    .unwrap();
    assert!(s.at_end());
    assert_eq!(
        seen,
        [
            (b"a".to_vec(), b"\"x\"".to_vec()),
            (b"b".to_vec(), br#"{"c":[1]}"#.to_vec()),
            (b"d".to_vec(), b"null".to_vec()),
        ]
    );
    assert_eq!(Scanner::new(b"{}").object(|_, _| Err(Unexpected)), Ok(()));
    assert_eq!(
        Scanner::new(br#"{"a\u0062":1}"#).object(|_, s| s.value().map(drop)),
        Err(Unexpected)
    );
    assert_eq!(
        Scanner::new(br#"{"a" 1}"#).object(|_, s| s.value().map(drop)),
        Err(Unexpected)
    );
}

#[test]
fn plain_strings_only() {
    assert_eq!(Scanner::new(br#""uid-1""#).plain_string(), Ok("uid-1"));
    assert_eq!(Scanner::new(br#""a\nb""#).plain_string(), Err(Unexpected));
    assert_eq!(Scanner::new(b"5").plain_string(), Err(Unexpected));
    assert_eq!(Scanner::new(b"\"\xff\"").plain_string(), Err(Unexpected));
}

#[test]
fn the_text_check_rejects_invalid_utf8_anywhere() {
    // Long enough for the SIMD blocks (and their tails) of every width.
    let valid = format!(
        r#"{{"a":"{}é€😀","b":"{}"}}"#,
        "x".repeat(70),
        "y".repeat(200)
    );
    assert_eq!(Scanner::new(valid.as_bytes()).check_text(), Ok(()));
    for at in [3, 40, 63, 64, 100, valid.len() - 3] {
        for bad in [
            &[0xff][..],
            &[0xc0, 0x80],
            &[0xed, 0xa0, 0x80],
            &[0xe2, 0x82],
        ] {
            let mut bytes = valid.as_bytes().to_vec();
            bytes.splice(at..at, bad.iter().copied());
            assert_eq!(
                Scanner::new(&bytes).check_text(),
                Err(Unexpected),
                "{bad:x?} at {at}"
            );
        }
    }
}
