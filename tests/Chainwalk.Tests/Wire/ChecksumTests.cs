using Chainwalk.Wire;
using Xunit;

namespace Chainwalk.Tests.Wire;

public class ChecksumTests
{
    // An IPv4 header captured from the wire (ICMP echo 192.168.0.1 -> 192.168.0.199), checksum 0xb861.
    private static byte[] Header() => Convert.FromHexString("450000730000400040110000c0a80001c0a800c7");

    [Fact]
    public void Ipv4_header_checksum_is_computed_as_rfc1071_and_verifies()
    {
        byte[] b = Header();
        Assert.True(Ipv4Header.TryCreate(b, out Ipv4Header h));
        h.UpdateChecksum();
        Assert.Equal(0xb861, h.Checksum);
        Assert.True(h.ChecksumValid);
        b[8] = 63; // TTL changed without a checksum update
        Assert.True(Ipv4Header.TryCreate(b, out h));
        Assert.False(h.ChecksumValid);
    }

    [Theory]
    [InlineData("4500")] // too short
    [InlineData("650000730000400040110000c0a80001c0a800c7")] // version 6 in an IPv4 view
    [InlineData("460000730000400040110000c0a80001c0a800c7")] // IHL 6 but only 20 bytes
    public void Ipv4_view_refuses_buffers_that_do_not_hold_a_header(string hex)
    {
        Assert.False(Ipv4Header.TryCreate(Convert.FromHexString(hex), out _));
    }

    /// <summary>The sum as RFC 1071 writes it: one 16-bit big-endian word at a time (the reference for the wide loop).</summary>
    private static uint WordByWord(uint sum, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += (uint)((data[i] << 8) | data[i + 1]);
        if (i < data.Length) sum += (uint)(data[i] << 8);
        return sum;
    }

    [Theory]
    [InlineData(0, 0u, 0)]
    [InlineData(1, 0u, 0xff)]
    [InlineData(7, 5u, 0xff)]
    [InlineData(8, 0u, 0xff)]
    [InlineData(9, 0xffff_fff0u, 0xff)]
    [InlineData(20, 0u, -1)]
    [InlineData(41, 12345u, -1)]
    [InlineData(1500, 0u, 0xff)]
    [InlineData(65535, 0u, 0xff)]
    [InlineData(65535, 0xffff_0000u, -1)]
    public void Add_gives_the_same_integer_sum_as_a_word_by_word_loop(int length, uint start, int fill)
    {
        // fill -1: seeded random bytes; else every byte is fill (0xff: the largest words, the lanes' worst case).
        byte[] data = new byte[length];
        if (fill < 0) new Random(length).NextBytes(data);
        else Array.Fill(data, (byte)fill);
        Assert.Equal(WordByWord(start, data), Checksum.Add(start, data));
    }

    /// <summary>Lengths around the vector sum's start (128) and its 64-byte steps, at aligned and odd offsets.</summary>
    public static TheoryData<int, int, uint> VectorLengths()
    {
        var d = new TheoryData<int, int, uint>();
        foreach (int length in new[] { 63, 64, 127, 128, 129, 130, 131, 191, 192, 193, 255, 256, 257, 1459, 1460, 1461, 1499, 1500, 1501, 9000, 65535 })
        {
            foreach (int offset in new[] { 0, 1, 3 }) d.Add(length, offset, offset == 3 ? 0xffff_ff00u : 7u);
        }
        return d;
    }

    [Theory]
    [MemberData(nameof(VectorLengths))]
    public void Add_with_vectors_gives_the_same_integer_sum_as_a_word_by_word_loop(int length, int offset, uint start)
    {
        byte[] buffer = new byte[length + offset];
        new Random(length * 7 + offset).NextBytes(buffer);
        Assert.Equal(WordByWord(start, buffer.AsSpan(offset)), Checksum.Add(start, buffer.AsSpan(offset)));
        // All ones: every lane at its largest each step.
        Array.Fill(buffer, (byte)0xff);
        Assert.Equal(WordByWord(start, buffer.AsSpan(offset)), Checksum.Add(start, buffer.AsSpan(offset)));
    }

    [Theory]
    [InlineData("c0a80002", "0a000001", 6, 20)]
    [InlineData("ffffffff", "ffffffff", 17, 65535)]
    [InlineData("00000000", "00000000", 1, 0)]
    public void PseudoV4_gives_the_same_sum_as_adding_the_address_words(string src, string dst, byte protocol, int length)
    {
        byte[] s = Convert.FromHexString(src), d = Convert.FromHexString(dst);
        Assert.Equal(WordByWord(WordByWord(0, s), d) + protocol + (uint)length, Checksum.PseudoV4(s, d, protocol, length));
    }
}
