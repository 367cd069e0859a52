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
}
