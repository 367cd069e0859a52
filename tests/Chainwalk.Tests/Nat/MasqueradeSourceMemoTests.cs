using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// MASQUERADE's source address (inet_select_addr for the out device and next hop) is remembered while the host is unchanged
/// (<c>NatTargets.Source4</c>, keyed by the host's generation since session 12): after a change of the out device's
/// addresses, the next connection gets the address the host has now, as the kernel asks inet_select_addr per connection.
/// Untraced packets (the field path of the binding) and traced ones.
/// </summary>
public class MasqueradeSourceMemoTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_new_connection_after_an_address_change_gets_the_new_address(bool trace)
    {
        VirtualHost host = EngineHost.Create("*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n", "", NatRig.Gateway4);
        var nf = new Netfilter(host) { RecordTrace = trace };
        ConntrackLoader.Enable(nf).ShouldNotBeNull();
        string Source(ushort sport)
        {
            PacketResult r = nf.Process(EngineHost.In("eth1", EngineHost.Tcp("10.0.1.20", "93.184.216.34", sport, 80)));
            return NatRig.Outputs(r);
        }
        Source(40000).ShouldBe("eth0 198.51.100.2:40000 > 93.184.216.34:80 S");
        Source(40001).ShouldBe("eth0 198.51.100.2:40001 > 93.184.216.34:80 S");
        // The out device's address changes (same subnet: the default route's gateway stays on link).
        host.Addresses.RemoveAll(a => a.Device == "eth0");
        host.Addresses.Add(new InterfaceAddress("eth0", IpFamily.V4, 0xc6336407, 24));
        Source(40002).ShouldBe("eth0 198.51.100.7:40002 > 93.184.216.34:80 S");
        // And back.
        host.Addresses.RemoveAll(a => a.Device == "eth0");
        host.Addresses.Add(new InterfaceAddress("eth0", IpFamily.V4, 0xc6336402, 24));
        Source(40003).ShouldBe("eth0 198.51.100.2:40003 > 93.184.216.34:80 S");
    }
    /// <summary>
    /// The memo remembers a "no address" answer too: with no IPv4 address to choose (inet_select_addr returns 0: no device has
    /// one), every connection is dropped with the kernel's "ate my IP address", the second (answered by the memo) as the first;
    /// then an address is added and the next connection is masqueraded to it.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Without_an_address_every_connection_is_dropped_until_one_is_added(bool trace)
    {
        VirtualHost host = EngineHost.Create("*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n", "",
        [
            "ip link add eth0 type dummy", "ip link add eth1 type dummy", "ip link set eth0 up", "ip link set eth1 up",
            "ip route add 93.184.216.0/24 dev eth0", "ip route add 10.0.1.0/24 dev eth1", "sysctl -w net.ipv4.ip_forward=1",
        ]);
        var nf = new Netfilter(host) { RecordTrace = trace };
        ConntrackLoader.Enable(nf).ShouldNotBeNull();
        PacketResult Send(ushort sport) => nf.Process(EngineHost.In("eth1", EngineHost.Tcp("10.0.1.20", "93.184.216.34", sport, 80)));
        for (ushort sport = 40000; sport < 40003; sport++)
        {
            PacketResult r = Send(sport);
            NatRig.Outputs(r).ShouldBe("", $"sport {sport}");
            r.Fate.ShouldBe(["dropped"], $"sport {sport}");
        }
        host.Addresses.Add(new InterfaceAddress("eth0", IpFamily.V4, 0xc6336402, 24));
        NatRig.Outputs(Send(40003)).ShouldBe("eth0 198.51.100.2:40003 > 93.184.216.34:80 S");
    }
}
