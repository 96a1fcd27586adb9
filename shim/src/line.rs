//! The debug line, formatted into a stack buffer without allocating:
//! `forcebacklog: listen(fd 3, port 8080) backlog 5 -> 234`.

/// A fixed-size line buffer; bytes beyond its capacity are dropped.
pub struct Line {
    bytes: [u8; 112],
    len: usize,
}

impl Line {
    /// The line for one changed `listen()` call. `port` is `None` for
    /// sockets that are not IPv4/IPv6 (the port part is then left out).
    pub fn new(fd: i32, port: Option<u16>, old: i32, new: i32) -> Line {
        let mut line = Line {
            bytes: [0; 112],
            len: 0,
        };
        line.push(b"forcebacklog: listen(fd ");
        line.push_int(i64::from(fd));
        if let Some(port) = port {
            line.push(b", port ");
            line.push_int(i64::from(port));
        }
        line.push(b") backlog ");
        line.push_int(i64::from(old));
        line.push(b" -> ");
        line.push_int(i64::from(new));
        line.push(b"\n");
        line
    }

    /// The formatted bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    fn push(&mut self, text: &[u8]) {
        for &byte in text {
            if let Some(slot) = self.bytes.get_mut(self.len) {
                *slot = byte;
                self.len += 1;
            }
        }
    }

    fn push_int(&mut self, value: i64) {
        if value < 0 {
            self.push(b"-");
        }
        let mut magnitude = value.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            if let Some(slot) = digits.get_mut(start) {
                *slot = b'0' + (magnitude % 10) as u8;
            }
            magnitude /= 10;
            if magnitude == 0 || start == 0 {
                break;
            }
        }
        self.push(digits.get(start..).unwrap_or(&[]));
    }
}

#[cfg(test)]
mod tests {
    use super::Line;

    #[test]
    fn the_documented_line() {
        let line = Line::new(3, Some(8080), 5, 234);
        assert_eq!(
            line.as_bytes(),
            b"forcebacklog: listen(fd 3, port 8080) backlog 5 -> 234\n"
        );
    }

    #[test]
    fn extremes_fit() {
        let line = Line::new(i32::MIN, Some(65535), i32::MIN, i32::MAX);
        assert_eq!(
            line.as_bytes(),
            b"forcebacklog: listen(fd -2147483648, port 65535) backlog -2147483648 -> 2147483647\n"
        );
        let line = Line::new(7, None, 0, 1);
        assert_eq!(
            line.as_bytes(),
            b"forcebacklog: listen(fd 7) backlog 0 -> 1\n"
        );
    }
}
