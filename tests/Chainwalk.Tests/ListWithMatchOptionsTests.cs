using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// iptables-nft 1.8.9 checks "TCP match requires '-p tcp'" only when it builds a rule: a stray match option on a
/// listing command is accepted (checked with the real tool: `iptables -L -m tcp --dport 1` exits 0).
/// </summary>
public class ListWithMatchOptionsTests
{
    [Theory]
    [InlineData("-L", "-m", "tcp", "--dport", "1")]
    [InlineData("-S", "-m", "udp", "--sport", "53")]
    public void Listing_ignores_the_native_tcp_udp_protocol_check(params string[] args)
    {
        var store = new HostStore(Directory.CreateTempSubdirectory("cw-lm-").FullName);
        var (rc, output, err) = CompatRun.Iptables(IpFamily.V4, store, args);
        Assert.Equal(0, rc);
        Assert.Equal(string.Empty, err);
        Assert.StartsWith(args[0] == "-L" ? "Chain INPUT (policy ACCEPT)" : "-P INPUT ACCEPT", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Appending_still_requires_the_protocol()
    {
        var store = new HostStore(Directory.CreateTempSubdirectory("cw-lm-").FullName);
        var (rc, _, err) = CompatRun.Iptables(IpFamily.V4, store, "-A", "INPUT", "-m", "tcp", "--dport", "1");
        Assert.Equal(2, rc);
        Assert.StartsWith("iptables v1.8.9 (nf_tables): TCP match requires '-p tcp'", err, StringComparison.Ordinal);
    }
}
