using System.Globalization;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A hook's tables as a plan per ruleset version (<c>Netfilter.HookPlanOf</c>) against plans made anew for every packet
/// (<see cref="Netfilter.ForgetHookPlans"/>): two identical gateways take the same random steps, tables of both families
/// added, replaced with other variants (rules, DROP policies, empty chains) and removed, whole rule sets swapped for
/// copies, and packets of every kind (forwarded both ways, to the host, sent by it, IPv6). Every packet's fate, state and
/// bytes out, and the rule and policy counters after it, must be the same on both.
/// </summary>
public class HookPlanTests
{
    private static readonly string[] Network =
    [
        .. Chainwalk.Tests.Nat.NatRig.Gateway4,
        "ip -6 addr add 2001:db8:1::2/64 dev eth0", "ip -6 addr add 2001:db8:2::1/64 dev eth1",
        "ip -6 route add default via 2001:db8:1::1", "sysctl -w net.ipv6.conf.all.forwarding=1",
    ];

    private const string Nat = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A POSTROUTING -o eth0 -j MASQUERADE
        COMMIT
        """;

    /// <summary>Variants of each table (IPv4 and IPv6 alike): a table with rules, the same with a DROP policy, empty.</summary>
    private static readonly Dictionary<string, string[]> Variants = new()
    {
        ["raw"] =
        [
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 81 -j DROP\n-A OUTPUT -p tcp -m tcp --dport 82 -j DROP\nCOMMIT\n",
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT DROP [0:0]\n-A OUTPUT -p tcp -m tcp --dport 83 -j ACCEPT\nCOMMIT\n",
        ],
        ["mangle"] =
        [
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 84 -j MARK --set-xmark 0x5/0xffffffff\n-A FORWARD -p tcp -m tcp --dport 85 -j DROP\n-A POSTROUTING -p tcp -m tcp --dport 86 -j DROP\nCOMMIT\n",
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n",
        ],
        ["nat"] = [Nat + "\n", "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"],
        ["filter"] =
        [
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 87 -j DROP\n-A FORWARD -m conntrack --ctstate INVALID -j DROP\n-A FORWARD -p tcp -m tcp --dport 88 -j DROP\n-A OUTPUT -p tcp -m tcp --dport 89 -j DROP\nCOMMIT\n",
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n",
        ],
        ["security"] =
        [
            "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 90 -j DROP\n-A FORWARD -p tcp -m tcp --dport 91 -j DROP\n-A OUTPUT -p tcp -m tcp --dport 92 -j DROP\nCOMMIT\n",
            "*security\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n",
        ],
    };

    private static readonly string[] Names = ["raw", "mangle", "nat", "filter", "security"];

    private static readonly ushort[] Ports = [80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 22, 8080];

    private sealed class Side
    {
        public Side(bool conntrack, bool reference)
        {
            Host = EngineHost.Create("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n" + Nat + "\n", Nat.Replace("10.0.1.20:80", "[2001:db8:2::20]:80", StringComparison.Ordinal) + "\n", Network);
            Nf = new Netfilter(Host);
            if (conntrack) ConntrackLoader.Enable(Nf).ShouldNotBeNull();
            Reference = reference;
        }

        public VirtualHost Host { get; }

        public Netfilter Nf { get; }

        public bool Reference { get; }

        public string Run(PacketInput input)
        {
            if (Reference) Nf.ForgetHookPlans();
            PacketResult r = Nf.Process(input);
            string outs = string.Join(" ", r.Outputs.Select(o => o.Interface + ":" + Convert.ToHexString(o.Packet.Bytes)));
            return string.Join(",", r.Fate) + " " + r.CtState + " " + r.DropReason + " " + outs + "\n"
                + EngineHost.Counters(Host) + "\n" + EngineHost.Counters(Host, IpFamily.V6);
        }
    }

    [Theory]
    [InlineData(1, true, 1500)]
    [InlineData(2, true, 1500)]
    [InlineData(3, false, 1000)]
    public void Hook_plans_kept_per_ruleset_version_walk_what_plans_made_per_packet_walk(int seed, bool conntrack, int steps)
    {
        var kept = new Side(conntrack, reference: false);
        var fresh = new Side(conntrack, reference: true);
        var rnd = new Random(seed);
        int edits = 0;
        for (int i = 0; i < steps; i++)
        {
            if (rnd.Next(5) == 0)
            {
                // The same edit on both hosts.
                IpFamily family = rnd.Next(3) == 0 ? IpFamily.V6 : IpFamily.V4;
                string name = Names[rnd.Next(Names.Length)];
                int kind = rnd.Next(8);
                string text = Variants[name][rnd.Next(Variants[name].Length)];
                if (family == IpFamily.V6) text = text.Replace("10.0.1.20:80", "[2001:db8:2::20]:80", StringComparison.Ordinal);
                foreach (Side s in new[] { kept, fresh })
                {
                    Ruleset rules = s.Host.Rules(family);
                    if (kind == 0)
                    {
                        // A copy of the whole rule set (another object, its version counted anew).
                        Ruleset copy = rules.Clone();
                        if (family == IpFamily.V4) s.Host.V4 = copy;
                        else s.Host.V6 = copy;
                    }
                    else if (kind <= 2)
                    {
                        rules.Remove(name);
                    }
                    else if (kind == 3)
                    {
                        rules.GetOrCreate(EngineHost.Rules(family, text).Find(name)!.Info);
                    }
                    else
                    {
                        rules.Replace(EngineHost.Rules(family, text).Find(name)!);
                    }
                }
                edits++;
                continue;
            }
            PacketInput input = RandomPacket(rnd);
            string a = kept.Run(input);
            string b = fresh.Run(Copy(input));
            a.ShouldBe(b, $"step {i.ToString(CultureInfo.InvariantCulture)}");
        }
        edits.ShouldBeGreaterThan(steps / 10);
    }

    private static PacketInput Copy(PacketInput p) =>
        new() { Bytes = (byte[])p.Bytes.Clone(), InInterface = p.InInterface, OutInterface = p.OutInterface, SourceMac = p.SourceMac, Mark = p.Mark };

    private static PacketInput RandomPacket(Random rnd)
    {
        ushort port = Ports[rnd.Next(Ports.Length)];
        ushort cport = (ushort)(40000 + rnd.Next(6));
        TcpFlags flags = rnd.Next(3) == 0 ? TcpFlags.Ack : TcpFlags.Syn;
        int c = 10 + rnd.Next(3);
        switch (rnd.Next(7))
        {
            case 0:
                // From the inside out (MASQUERADE).
                return EngineHost.In("eth1", EngineHost.Tcp("10.0.1." + c.ToString(CultureInfo.InvariantCulture), "203.0.113.7", cport, port, flags));
            case 1:
                // From the outside in: DNAT on 8080, else to the inside host directly.
                return EngineHost.In("eth0", EngineHost.Tcp("203.0.113.9", port == 8080 ? "198.51.100.2" : "10.0.1.20", cport, port, flags));
            case 2:
                // The inside server's reply to a connection from outside (un-DNAT when it was 8080's).
                return EngineHost.In("eth1", EngineHost.Tcp("10.0.1.20", "203.0.113.9", port == 8080 ? (ushort)80 : port, cport, TcpFlags.Syn | TcpFlags.Ack));
            case 3:
                // To the host itself.
                return EngineHost.In("eth0", EngineHost.Tcp("203.0.113.9", "198.51.100.2", cport, port, flags));
            case 4:
                // Sent by the host.
                return EngineHost.Local(EngineHost.Tcp("198.51.100.2", "203.0.113.7", cport, port, flags));
            case 5:
                return EngineHost.In("eth1", EngineHost.Tcp("2001:db8:2::" + c.ToString(CultureInfo.InvariantCulture), "2001:db8:9::7", cport, port, flags));
            default:
                return EngineHost.In("eth0", EngineHost.Tcp("2001:db8:9::9", port == 8080 ? "2001:db8:1::2" : "2001:db8:2::20", cport, port, flags));
        }
    }
}
