using System.Globalization;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// NAT's bindings decided from the entry's fields (session 10, <c>NatCore.TrySetupV4</c>: IPv4 TCP/UDP bound to one
/// address, no trace) against the general tuple search (<see cref="ConntrackHooks.NatByFields"/> off) on the same random
/// traffic through the same gateway: MASQUERADE, SNAT to one address with and without a port range, DNAT with the port
/// kept, changed and from a range, null bindings both ways, source keys used again (by-source chains), tuples taken (a
/// client's own source in range, clashes of reply tuples), entries expiring. Every packet's fate, state and bytes out,
/// and the conntrack table at the end, must be the same.
/// </summary>
public class NatByFieldsTests
{
    private const string Rules = """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.0.1.21
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.1.22:53
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1003 -j DNAT --to-destination 10.0.1.23:1000-1005
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1009 -j DNAT --to-destination 10.0.1.23:1000-1005
        -A PREROUTING -i eth1 -d 203.0.113.99/32 -j DNAT --to-destination 10.0.1.1
        -A POSTROUTING -o eth0 -s 10.0.1.0/27 -j MASQUERADE
        -A POSTROUTING -o eth0 -s 10.0.1.32/27 -p tcp -j SNAT --to-source 198.51.100.2:2000-2003
        -A POSTROUTING -o eth0 -s 10.0.1.64/27 -j SNAT --to-source 198.51.100.2
        -A POSTROUTING -o eth0 -s 10.0.1.96/27 -p udp -j SNAT --to-source 198.51.100.2:53
        -A POSTROUTING -o eth0 -s 198.51.100.2/32 -j SNAT --to-source 198.51.100.2
        -A POSTROUTING -o eth0 -s 198.51.100.2/32 -p tcp -j SNAT --to-source 198.51.100.2:40000-40001
        COMMIT
        """;

    private sealed class Side
    {
        public Side(bool byFields)
        {
            Nf = new Netfilter(EngineHost.Create(Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4));
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            Ct.NatByFields = byFields;
        }

        public Netfilter Nf { get; }

        public ConntrackHooks Ct { get; }

        public string Run(PacketInput input)
        {
            PacketResult r = Nf.Process(input);
            string outs = string.Join(" ", r.Outputs.Select(o => o.Interface + ":" + Convert.ToHexString(o.Packet.Bytes)));
            return string.Join(",", r.Fate) + " " + r.CtState + " " + outs;
        }

        public string Listing => string.Join("\n", Ct.Table.List(Nf.State.Now));
    }

    public static TheoryData<int, int, int> Cases() => new()
    {
        // seed, packets, source ports per client (few: source keys used again and clashes)
        { 1, 600, 2 },
        { 2, 1500, 6 },
        { 3, 3000, 40 },
        { 4, 1200, 1 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bindings_by_fields_are_those_of_the_general_search(int seed, int packets, int ports)
    {
        var fields = new Side(byFields: true);
        var general = new Side(byFields: false);
        var rnd = new Random(seed);
        double now = 1000;
        int most = 0;
        string[] servers = ["93.184.216.34", "93.184.216.35", "198.51.100.2", "198.51.100.7"];
        ushort[] inPorts = [8080, 8081, 1003, 1009, 22];
        for (int i = 0; i < packets; i++)
        {
            // Time moves a little, now and then past the unreplied timeouts (UDP 30 s, SYN_SENT 120 s).
            now += rnd.Next(20) == 0 ? rnd.Next(20, 200) : rnd.NextDouble();
            byte[] bytes;
            string iface;
            int what = rnd.Next(10);
            bool udp = rnd.Next(4) == 0;
            if (what < 6)
            {
                // A LAN client out (MASQUERADE, SNAT with or without ports, a null binding for .128 and up).
                string src = "10.0.1." + rnd.Next(2, 140).ToString(CultureInfo.InvariantCulture);
                ushort sport = (ushort)(rnd.Next(2) == 0 ? 1024 + rnd.Next(ports) : 2000 + rnd.Next(4));
                var b = PacketBuilder.Ipv4(src, servers[rnd.Next(servers.Length)]);
                ushort dport = (ushort)(rnd.Next(2) == 0 ? 80 : 53);
                bytes = udp ? b.Udp(sport, dport).Build() : b.Tcp(sport, dport, TcpFlags.Syn, seq: (uint)rnd.Next()).Build();
                iface = "eth1";
            }
            else if (what < 9)
            {
                // The internet in to the gateway (DNAT: port kept, changed, from a range; or no rule: the null binding).
                string src = "203.0.113." + rnd.Next(1, 6).ToString(CultureInfo.InvariantCulture);
                ushort sport = (ushort)(30000 + rnd.Next(ports));
                var b = PacketBuilder.Ipv4(src, "198.51.100.2");
                bytes = udp ? b.Udp(sport, 53).Build() : b.Tcp(sport, inPorts[rnd.Next(inPorts.Length)], TcpFlags.Syn, seq: (uint)rnd.Next()).Build();
                iface = "eth0";
            }
            else if (rnd.Next(2) == 0)
            {
                // The gateway's own connections out, from the address MASQUERADE maps to and the ports its clients use: the
                // source is in range and its tuple may be taken (the port then moves).
                ushort sport = (ushort)(rnd.Next(2) == 0 ? 1024 + rnd.Next(ports) : 2000 + rnd.Next(4));
                var b = PacketBuilder.Ipv4("198.51.100.2", servers[rnd.Next(2)]);
                ushort dport = (ushort)(rnd.Next(2) == 0 ? 80 : 53);
                bytes = udp ? b.Udp(sport, dport).Build() : b.Tcp(sport, dport, TcpFlags.Syn, seq: (uint)rnd.Next()).Build();
                var li = new PacketInput { Bytes = bytes, At = now };
                var lj = new PacketInput { Bytes = (byte[])bytes.Clone(), At = now };
                string la = fields.Run(li);
                string lg = general.Run(lj);
                la.ShouldBe(lg, $"packet {i}");
                continue;
            }
            else
            {
                // A LAN client to the DNATed address that is the gateway's own (delivered locally).
                ushort sport = (ushort)(1024 + rnd.Next(ports));
                bytes = PacketBuilder.Ipv4("10.0.1." + rnd.Next(2, 20).ToString(CultureInfo.InvariantCulture), "203.0.113.99").Tcp(sport, 22, TcpFlags.Syn, seq: 7).Build();
                iface = "eth1";
            }
            string a = fields.Run(EngineHost.In(iface, bytes, now));
            string g = general.Run(EngineHost.In(iface, (byte[])bytes.Clone(), now));
            a.ShouldBe(g, $"packet {i}");
            most = Math.Max(most, fields.Ct.Table.Count);
        }
        fields.Listing.ShouldBe(general.Listing);
        most.ShouldBeGreaterThan(20);
        // Most bindings were the field path's; the general side made none that way.
        fields.Ct.NatFieldBindings.ShouldBeGreaterThan(packets / 2);
        general.Ct.NatFieldBindings.ShouldBe(0);
    }

    /// <summary>The differential above only means something when the field path takes most bindings: counted here.</summary>
    [Fact]
    public void The_field_path_binds_without_the_general_search()
    {
        var side = new Side(byFields: true);
        for (int i = 0; i < 50; i++)
        {
            byte[] syn = PacketBuilder.Ipv4("10.0.1." + (2 + i % 20).ToString(CultureInfo.InvariantCulture), "93.184.216.34").Tcp((ushort)(5000 + i), 80, TcpFlags.Syn, seq: 1).Build();
            side.Run(EngineHost.In("eth1", syn, 1000 + i)).ShouldStartWith("forwarded:eth0 NEW");
        }
        side.Ct.Table.Entries.Count(e => e.Has(ConnStatus.SrcNat)).ShouldBe(50);
        // Two bindings each (the null one at PREROUTING, MASQUERADE's), none through the general search.
        side.Ct.NatFieldBindings.ShouldBe(100);
    }
}
