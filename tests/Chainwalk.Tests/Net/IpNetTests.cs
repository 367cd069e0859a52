using System.Net;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests.Net;

public class IpNetTests
{
    // Expected texts are what glibc inet_ntop (and so ip6tables) prints, checked on this machine.
    [Theory]
    [InlineData("2001:db8:0:0:8d3:0:0:0", "2001:db8:0:0:8d3::")]
    [InlineData("2001:db8:0:0:8d3:0:0:1", "2001:db8::8d3:0:0:1")]
    [InlineData("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1")]
    [InlineData("::ffff:1.2.3.4", "::ffff:1.2.3.4")]
    [InlineData("::1.2.3.4", "::1.2.3.4")]
    [InlineData("::1", "::1")]
    [InlineData("::", "::")]
    [InlineData("1::", "1::")]
    [InlineData("ffff:0:ffff::", "ffff:0:ffff::")]
    [InlineData("fe80::1:0:0:0", "fe80::1:0:0:0")]
    public void Ipv6_text_is_glibc_inet_ntop(string input, string expected)
    {
        UInt128 v = IpNet.FromIPAddress(IPAddress.Parse(input));
        Assert.Equal(expected, IpNet.FormatAddress(v, IpFamily.V6));
    }

    [Theory]
    [InlineData("10", true, 0x0a000000u)]
    [InlineData("10.1", true, 0x0a010000u)]
    [InlineData("0x0a.010.0.1", true, 0x0a080001u)]
    [InlineData("256.1.1.1", false, 0u)]
    [InlineData("1.2.3.4.5", false, 0u)]
    public void Ipv4_numeric_parse_follows_libxtables(string text, bool ok, uint value)
    {
        Assert.Equal(ok, IpNet.TryParseV4Numeric(text, false, out uint v));
        if (ok) Assert.Equal(value, v);
    }
}
