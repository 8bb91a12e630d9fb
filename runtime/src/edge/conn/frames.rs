//! Follows an HTTP/2 client's byte stream frame by frame, only far enough to
//! know whether it is inside a header block: from a HEADERS frame until the
//! frame carrying END_HEADERS has fully arrived. A client that stops there
//! holds its stream open with no request for wedge to time; the watchdog gives
//! such a block `header_read_timeout`, as it gives an HTTP/1 head.

/// The client connection preface, which precedes the first frame.
const PREFACE_LEN: usize = 24;
/// Every frame starts with a 9-byte header.
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Where the stream is: in the preface, in a frame header, or in a payload.
#[derive(Debug)]
pub struct FrameTracker {
    preface_left: usize,
    header: [u8; FRAME_HEADER],
    header_len: usize,
    payload_left: usize,
    /// The frame whose payload is arriving ends the header block.
    ends_block: bool,
    in_block: bool,
}

impl Default for FrameTracker {
    fn default() -> Self {
        Self {
            preface_left: PREFACE_LEN,
            header: [0; FRAME_HEADER],
            header_len: 0,
            payload_left: 0,
            ends_block: false,
            in_block: false,
        }
    }
}

impl FrameTracker {
    /// Takes in the next bytes the client sent.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(data.len());
                self.preface_left -= n;
                data = &data[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                self.payload_left -= n;
                data = &data[n..];
                if self.payload_left == 0 {
                    self.end_of_frame();
                }
            } else {
                let n = (FRAME_HEADER - self.header_len).min(data.len());
                self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
                self.header_len += n;
                data = &data[n..];
                if self.header_len == FRAME_HEADER {
                    self.start_frame();
                }
            }
        }
    }

    /// Whether a header block has begun and not ended.
    pub fn in_header_block(&self) -> bool {
        self.in_block
    }

    fn start_frame(&mut self) {
        let h = self.header;
        self.header_len = 0;
        self.payload_left = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        self.ends_block = false;
        if kind == HEADERS || kind == CONTINUATION {
            self.in_block = true;
            self.ends_block = flags & END_HEADERS != 0;
        }
        if self.payload_left == 0 {
            self.end_of_frame();
        }
    }

    fn end_of_frame(&mut self) {
        if self.ends_block {
            self.in_block = false;
            self.ends_block = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn a_header_block_lasts_until_end_headers_arrives() {
        let mut t = FrameTracker::default();
        t.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        t.feed(&frame(0x4, 0, &[0; 6]));
        assert!(!t.in_header_block(), "SETTINGS");
        let headers = frame(HEADERS, 0, &[1; 40]);
        t.feed(&headers[..20]);
        assert!(t.in_header_block(), "HEADERS begun");
        t.feed(&headers[20..]);
        assert!(t.in_header_block(), "no END_HEADERS yet");
        let cont = frame(CONTINUATION, END_HEADERS, &[2; 30]);
        t.feed(&cont[..15]);
        assert!(t.in_header_block(), "the last fragment is still arriving");
        t.feed(&cont[15..]);
        assert!(!t.in_header_block(), "complete");
    }

    #[test]
    fn one_complete_headers_frame_byte_by_byte() {
        let mut t = FrameTracker::default();
        let mut stream = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        stream.extend(frame(HEADERS, END_HEADERS | 0x1, &[3; 10]));
        stream.extend(frame(0x0, 0x1, &[4; 5]));
        for b in &stream {
            t.feed(std::slice::from_ref(b));
        }
        assert!(!t.in_header_block());
    }
}
