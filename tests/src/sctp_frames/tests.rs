use super::*;

#[test]
fn crc32c_check_value() {
    // The standard CRC-32C check value of "123456789".
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn chunk_padding_and_length() {
    let c = Chunk::cookie_echo(&[1, 2, 3, 4, 5]).encode();
    assert_eq!(c.len(), 12);
    assert_eq!(&c[..4], &[10, 0, 0, 9]);
    assert_eq!(Chunk::cookie_ack().encode(), vec![11, 0, 0, 4]);
}

#[test]
fn big_uint_encoding() {
    assert_eq!(aper::big_uint(1, 2), vec![0x00, 0x01]);
    assert_eq!(aper::big_uint(0x1234, 2), vec![0x40, 0x12, 0x34]);
    assert_eq!(aper::big_uint(0x12_3456_789a, 3), vec![0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
}
