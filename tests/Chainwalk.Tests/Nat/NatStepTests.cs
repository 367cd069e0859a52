using System.Globalization;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// The nat step of a hook plan (<c>Netfilter.RunHookTable</c>) calling NatHooks directly — the nat table's presence taken
/// from the plan, no nf_nat_oif_changed after a binding the walk just made (nf_nat_inet_fn's do_nat) — against the same
/// steps through <see cref="IConntrackHooks"/> (<c>NeedsNatRules</c>, <c>ApplyNat</c>: every check made). Two gateways take
/// the same random steps: packets of MASQUERADEd, SNATed, DNATed and unbound connections both ways (SYNs retransmitted,
/// data, replies, IPv6, sent by the host), the default route moved between two interfaces (a masqueraded connection
/// leaving by the other one is killed), the nat table emptied and restored (null bindings), IPv4 tracking switched off
/// and on. Every packet's fate, state, drop reason and bytes out, the counters and the conntrack listing must be equal.
/// </summary>
public class NatStepTests
{
    private const string Rules = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A PREROUTING -i eth0 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.0.1.20:53
        -A OUTPUT -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.0.1.20:80
        -A POSTROUTING -o eth+ -p tcp -m tcp --dport 81 -j SNAT --to-source 198.51.100.2
        -A POSTROUTING -o eth0 -j MASQUERADE
        -A POSTROUTING -o eth2 -j MASQUERADE
        COMMIT
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        -A FORWARD -m conntrack --ctstate INVALID -j DROP
        -A FORWARD -p tcp -m tcp --dport 82 -j DROP
        COMMIT

        """;

    private const string Rules6 = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT

        """;

    private const string EmptyNat = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";

    private static readonly string[] Links = [.. NatRig.Gateway, "ip link add eth2 type dummy", "ip link set eth2 up", "ip addr add 203.0.113.1/24 dev eth2"];

    private sealed class Side
    {
        public Side(bool direct)
        {
            Host = EngineHost.Create(Rules, Rules6, Links);
            Nf = new Netfilter(Host) { NatStepDirect = direct };
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("no conntrack");
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        public string Run(PacketInput input)
        {
            PacketResult r = Nf.Process(input);
            string outs = string.Join(" ", r.Outputs.Select(o => o.Interface + ":" + Convert.ToHexString(o.Packet.Bytes)));
            return string.Join(",", r.Fate) + " " + r.CtState + " " + r.DropReason + " " + outs + "\n"
                + EngineHost.Counters(Host) + "\n" + EngineHost.Counters(Host, IpFamily.V6) + "\n"
                + string.Join("\n", Ct.Table.List(Nf.State.Now));
        }

        public void RouteBy(bool eth2)
        {
            Chainwalk.Host.Network.DeleteRoute(Host, IpFamily.V4, 0, 0, null, null, null, null);
            Chainwalk.Host.Network.AddRoute(Host, eth2 ? new Route(IpFamily.V4, 0, 0, "eth2", 0xcb0071fe, null) : new Route(IpFamily.V4, 0, 0, "eth0", 0xc6336401, null));
        }
    }

    [Theory]
    [InlineData(1, 2000)]
    [InlineData(2, 2000)]
    [InlineData(3, 4000)]
    public void The_direct_nat_step_does_what_the_interface_steps_do(int seed, int steps)
    {
        var direct = new Side(direct: true);
        var general = new Side(direct: false);
        var rnd = new Random(seed);
        bool eth2 = false, empty = false;
        int killed = 0, nullBound = 0;
        for (int i = 0; i < steps; i++)
        {
            int what = rnd.Next(40);
            if (what == 0)
            {
                eth2 = !eth2;
                direct.RouteBy(eth2);
                general.RouteBy(eth2);
                continue;
            }
            if (what == 1)
            {
                empty = !empty;
                foreach (Side s in new[] { direct, general })
                    s.Host.V4.Replace(EngineHost.Rules(IpFamily.V4, empty ? EmptyNat : Rules).Find("nat")!);
                continue;
            }
            if (what == 2 && rnd.Next(4) == 0)
            {
                bool on = !direct.Ct.TrackV4;
                direct.Ct.TrackV4 = on;
                general.Ct.TrackV4 = on;
                continue;
            }
            PacketInput input = RandomPacket(rnd);
            string a = direct.Run(input);
            string b = general.Run(new PacketInput { Bytes = (byte[])input.Bytes.Clone(), InInterface = input.InInterface, OutInterface = input.OutInterface, SourceMac = input.SourceMac, Mark = input.Mark });
            a.ShouldBe(b, $"step {i.ToString(CultureInfo.InvariantCulture)}");
            if (a.StartsWith("dropped", StringComparison.Ordinal) && a.Contains("NAT", StringComparison.Ordinal)) killed++;
            if (empty) nullBound++;
        }
        killed.ShouldBeGreaterThan(0);
        nullBound.ShouldBeGreaterThan(steps / 20);
    }

    private static PacketInput RandomPacket(Random rnd)
    {
        ushort[] ports = [80, 81, 82, 8080];
        ushort port = ports[rnd.Next(ports.Length)];
        ushort cport = (ushort)(40000 + rnd.Next(4));
        TcpFlags flags = rnd.Next(3) switch { 0 => TcpFlags.Ack, 1 => TcpFlags.Ack | TcpFlags.Psh, _ => TcpFlags.Syn };
        string c = "10.0.1." + (10 + rnd.Next(3)).ToString(CultureInfo.InvariantCulture);
        switch (rnd.Next(9))
        {
            case 0:
            case 1:
                // Inside out: MASQUERADE by eth0 or eth2 (wherever the default route is), SNAT for port 81.
                return EngineHost.In("eth1", EngineHost.Tcp(c, "93.184.216.34", cport, port, flags));
            case 2:
                return EngineHost.In("eth1", EngineHost.Udp(c, "93.184.216.34", cport, 53));
            case 3:
                // Replies from outside to the gateway's masqueraded addresses (un-SNAT), by either interface.
                return rnd.Next(2) == 0
                    ? EngineHost.In("eth0", EngineHost.Tcp("93.184.216.34", "198.51.100.2", port, cport, TcpFlags.Syn | TcpFlags.Ack))
                    : EngineHost.In("eth2", EngineHost.Tcp("93.184.216.34", "203.0.113.1", port, cport, TcpFlags.Syn | TcpFlags.Ack));
            case 4:
                // From outside in: DNAT on 8080 / 5353, else to the gateway itself.
                return rnd.Next(3) == 0
                    ? EngineHost.In("eth0", EngineHost.Udp("93.184.216.35", "198.51.100.2", cport, 5353))
                    : EngineHost.In("eth0", EngineHost.Tcp("93.184.216.35", "198.51.100.2", cport, port, flags));
            case 5:
                // The inside server's replies (un-DNAT).
                return EngineHost.In("eth1", EngineHost.Tcp("10.0.1.20", "93.184.216.35", 80, cport, TcpFlags.Syn | TcpFlags.Ack));
            case 6:
                // Sent by the gateway: DNAT at OUTPUT on 8081, a null binding otherwise.
                return EngineHost.Local(EngineHost.Tcp("198.51.100.2", rnd.Next(2) == 0 ? "93.184.216.34" : "10.0.1.20", cport, rnd.Next(2) == 0 ? (ushort)8081 : port, flags));
            case 7:
                return EngineHost.In("eth1", EngineHost.Tcp("fd00:1::" + (10 + rnd.Next(3)).ToString(CultureInfo.InvariantCulture), "2001:db8:9::7", cport, port, flags));
            default:
                return EngineHost.In("eth0", EngineHost.Tcp("2001:db8:9::7", "2001:db8:100::2", port, cport, TcpFlags.Syn | TcpFlags.Ack));
        }
    }
}
