using Chainwalk.Compat;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests;

/// <summary>
/// The verdicts and reasons of <see cref="RouteLookup.Input"/> on top of the routes the golden test
/// checks against the kernel: which of the kernel's answers mean local delivery, forwarding or a drop.
/// </summary>
public class RoutingDecisionTests
{
    private static VirtualHost Build(params string[] lines)
    {
        string dir = Directory.CreateTempSubdirectory("cw-route-").FullName;
        try
        {
            var store = new HostStore(dir);
            foreach (string line in lines)
            {
                string[] argv = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var output = new StringWriter();
                var io = new ToolIo { In = TextReader.Null, Out = output, Err = output };
                int rc = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                rc.ShouldBe(0, line + ": " + output);
            }
            return store.LoadNetwork();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static readonly string[] TwoLinks =
    [
        "ip link add eth0 type veth peer name eth0p",
        "ip link add eth1 type veth peer name eth1p",
        "ip addr add 10.0.0.1/24 dev eth0",
        "ip addr add 192.168.1.10/24 dev eth1",
        "ip link set eth0p up",
        "ip link set eth0 up",
        "ip link set eth1p up",
        "ip link set eth1 up",
        "ip -6 addr add 2001:db8:1::1/64 dev eth0 nodad",
        "ip -6 addr add 2001:db8:2::1/64 dev eth1 nodad",
        "ip route add default via 10.0.0.254",
        "ip -6 route add default via 2001:db8:1::ff",
    ];

    private static UInt128 A(string text)
    {
        IpFamily f = text.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4;
        IpNet.TryParseStrict(text, f, out UInt128 a).ShouldBeTrue();
        return a;
    }

    private static InputDecision In(VirtualHost h, string dst, string src, string iif)
    {
        IpFamily f = dst.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4;
        return RouteLookup.Input(h, new RouteQuery(f, A(dst)) { Source = A(src), InputInterface = iif });
    }

    [Fact]
    public void Ipv4_local_forward_and_drops()
    {
        VirtualHost h = Build(TwoLinks);
        In(h, "192.168.1.10", "10.0.0.9", "eth0").Verdict.ShouldBe(InputVerdict.Local);
        In(h, "10.0.0.255", "10.0.0.9", "eth0").Route.Type.ShouldBe(RouteType.Broadcast);
        InputDecision off = In(h, "8.8.8.8", "10.0.0.9", "eth0");
        (off.Verdict, off.Reason, off.Route.Error).ShouldBe((InputVerdict.Drop, InputDropReason.ForwardingDisabled, RouteError.HostUnreachable));
        In(h, "10.0.0.1", "127.0.0.1", "eth0").Reason.ShouldBe(InputDropReason.MartianSource);
        In(h, "127.0.0.1", "10.0.0.9", "eth0").Reason.ShouldBe(InputDropReason.MartianDestination);
        In(h, "10.0.0.1", "192.168.1.10", "eth0").Reason.ShouldBe(InputDropReason.SourceValidation);

        h = Build([.. TwoLinks, "sysctl -w net.ipv4.ip_forward=1"]);
        InputDecision fwd = In(h, "8.8.8.8", "192.168.1.9", "eth1");
        (fwd.Verdict, fwd.Route.Device, fwd.Route.Gateway, fwd.Redirect).ShouldBe((InputVerdict.Forward, "eth0", (UInt128?)A("10.0.0.254"), false));
        In(h, "8.8.8.8", "10.0.0.9", "eth0").Redirect.ShouldBeTrue();

        h = Build([.. TwoLinks, "sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv4.conf.all.rp_filter=1"]);
        RouteLookup.ReversePathFilter(h, "eth1").ShouldBe(1);
        In(h, "8.8.8.8", "10.0.0.9", "eth1").Reason.ShouldBe(InputDropReason.SourceValidation);
        In(h, "8.8.8.8", "192.168.1.9", "eth1").Verdict.ShouldBe(InputVerdict.Forward);
    }

    [Fact]
    public void Ipv4_no_route_with_forwarding_is_network_unreachable()
    {
        VirtualHost h = Build("ip link add eth0 type veth peer name eth0p", "ip addr add 10.0.0.1/24 dev eth0", "ip link set eth0p up", "ip link set eth0 up", "sysctl -w net.ipv4.ip_forward=1");
        InputDecision d = In(h, "8.8.8.8", "10.0.0.9", "eth0");
        (d.Verdict, d.Reason, d.Route.Error, d.Route.ErrorMessage).ShouldBe((InputVerdict.Drop, InputDropReason.NoRoute, RouteError.NetworkUnreachable, "Network is unreachable"));
        RouteLookup.Output(h, new RouteQuery(IpFamily.V4, A("8.8.8.8"))).Error.ShouldBe(RouteError.NetworkUnreachable);
    }

    [Fact]
    public void Ipv6_forwarding_scope_and_loopback()
    {
        VirtualHost h = Build(TwoLinks);
        In(h, "2001:db8:2::1", "2001:db8:1::9", "eth0").Verdict.ShouldBe(InputVerdict.Local);
        InputDecision off = In(h, "2001:4860::1", "2001:db8:1::9", "eth0");
        (off.Verdict, off.Reason, off.Route.Device).ShouldBe((InputVerdict.Drop, InputDropReason.ForwardingDisabled, "eth0"));
        InputDecision lo = In(h, "::1", "2001:db8:1::9", "eth0");
        (lo.Verdict, lo.Reason, lo.BeforePrerouting).ShouldBe((InputVerdict.Drop, InputDropReason.MartianDestination, true));
        In(h, "ff02::1", "fe80::9", "eth1").Verdict.ShouldBe(InputVerdict.Local);

        h = Build([.. TwoLinks, "sysctl -w net.ipv6.conf.all.forwarding=1"]);
        InputDecision fwd = In(h, "2001:4860::1", "2001:db8:2::9", "eth1");
        (fwd.Verdict, fwd.Route.Device, fwd.Route.Gateway).ShouldBe((InputVerdict.Forward, "eth0", (UInt128?)A("2001:db8:1::ff")));
        In(h, "2001:db8:2::9", "fe80::9", "eth0").Reason.ShouldBe(InputDropReason.BeyondScope);
    }

    [Fact]
    public void Local_addresses_and_address_types()
    {
        VirtualHost h = Build(TwoLinks);
        RouteLookup.IsLocalAddress(h, IpFamily.V4, A("192.168.1.10")).ShouldBeTrue();
        RouteLookup.IsLocalAddress(h, IpFamily.V4, A("192.168.1.11")).ShouldBeFalse();
        RouteLookup.IsLocalAddress(h, IpFamily.V6, A("2001:db8:2::1")).ShouldBeTrue();
        RouteLookup.AddressType4(h, A("10.0.0.1")).ShouldBe(RouteType.Local);
        // --limit-iface-in/out: the local route must be on that device (inet_dev_addr_type).
        RouteLookup.AddressType4(h, A("10.0.0.1"), "eth0").ShouldBe(RouteType.Local);
        RouteLookup.AddressType4(h, A("10.0.0.1"), "eth1").ShouldBe(RouteType.Unicast);
        RouteLookup.AddressType4(h, A("0.0.0.0")).ShouldBe(RouteType.Broadcast);
        RouteLookup.AddressTypes6(h, A("::")).ShouldContain(RouteType.Unspec);
        RouteLookup.AddressTypes6(h, A("2001:db8:1::1")).ShouldContain(RouteType.Local);
    }
}
