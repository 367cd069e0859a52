using System.Globalization;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The compiled form holds a DNAT target's range by value in its entry when it is one IPv4 address and at most one port
/// (<see cref="FlatTarget.Dnat"/>, <see cref="FlatEntry.DnatRange"/>; session 11 rulebytes2, before it svclayout's slots
/// beside the data slots), and the flat walk binds from it instead of the data object; any other range goes through the data
/// object. DNAT in every form the range takes (one address with and without a port, with --random and --persistent, an
/// address range, a port range, a shifted port map, --random, --persistent), in
/// built-in and user chains, through the whole pipeline with the compiled form and without it: every packet's fates,
/// state and bytes out, and the conntrack table at the end, must agree.
/// </summary>
public class NatSlotTests
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
        :SVC - [0:0]
        :SEP1 - [0:0]
        :SEP2 - [0:0]
        :SEP3 - [0:0]
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.20:80
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 10.0.1.21
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.0.1.22:53
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1003 -j DNAT --to-destination 10.0.1.23:1000-1005
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1009 -j DNAT --to-destination 10.0.1.24-10.0.1.26:1000-1005/1004
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1010 -j DNAT --to-destination 10.0.1.27-10.0.1.29 --persistent
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1011 -j DNAT --to-destination 10.0.1.30:2000-2999 --random
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1012 -j DNAT --to-destination 10.0.1.31:3000 --random
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1013 -j DNAT --to-destination 10.0.1.32 --persistent
        -A PREROUTING -i eth0 -d 198.51.100.2/32 -p tcp -m tcp --dport 1014 -j DNAT --to-destination 10.0.1.33:3002 --random --persistent
        -A PREROUTING -i eth0 -d 198.51.100.3/32 -j SVC
        -A SVC -m statistic --mode random --probability 0.3333333333 -j SEP1
        -A SVC -m statistic --mode random --probability 0.5000000000 -j SEP2
        -A SVC -j SEP3
        -A SEP1 -p tcp -m tcp -j DNAT --to-destination 10.0.1.40:8443
        -A SEP2 -p tcp -j DNAT --to-destination 10.0.1.41-10.0.1.42
        -A SEP2 -p udp -j DNAT --to-destination 10.0.1.41:5353
        -A SEP3 -p tcp -j DNAT --to-destination 10.0.1.43:7000-7003
        -A SEP3 -j DNAT --to-destination 10.0.1.44
        -A POSTROUTING -o eth0 -s 10.0.1.0/27 -j MASQUERADE
        -A POSTROUTING -o eth0 -s 10.0.1.32/27 -p tcp -j SNAT --to-source 198.51.100.2:2000-2003
        COMMIT
        """;

    private sealed class Side
    {
        public Side(bool compiled)
        {
            Nf = new Netfilter(EngineHost.Create(Rules, "", Chainwalk.Tests.Nat.NatRig.Gateway4));
            Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("conntrack not loaded");
            if (compiled) Nf.Compiled = CompiledRules.Build(Nf.Host.V4);
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

    [Theory]
    [InlineData(1, 800, 3)]
    [InlineData(2, 2000, 40)]
    public void Dnat_from_the_slots_binds_as_from_the_data(int seed, int packets, int ports)
    {
        var flat = new Side(compiled: true);
        var linear = new Side(compiled: false);
        // In the entry: PREROUTING's :80, no port, :53, :3000 --random, --persistent, :3002 --random --persistent; SEP1's, SEP2's
        // udp one, SEP3's second. The other six (ranges, a port map) go through their data.
        CompiledRules form = flat.Nf.Compiled!;
        form.Entries.Count(e => e.Target == FlatTarget.Dnat).ShouldBe(9);
        form.Entries.Count(e => e.Target == FlatTarget.Extension && e.Rule?.Target?.Extension is Chainwalk.Extensions.Targets.DnatTarget).ShouldBe(6);
        foreach (FlatEntry e in form.Entries)
        {
            if (e.Target == FlatTarget.Dnat) e.DnatRange.ShouldBe(Chainwalk.Nat.NatRange2.From((Chainwalk.Extensions.Targets.NatRangeData)e.Rule.Target!.Data!));
        }
        var rnd = new Random(seed);
        double now = 1000;
        ushort[] inPorts = [8080, 8081, 1003, 1009, 1010, 1011, 1012, 1013, 1014, 22];
        for (int i = 0; i < packets; i++)
        {
            now += rnd.Next(30) == 0 ? rnd.Next(20, 200) : rnd.NextDouble();
            bool udp = rnd.Next(5) == 0;
            string src = "203.0.113." + rnd.Next(1, 6).ToString(CultureInfo.InvariantCulture);
            ushort sport = (ushort)(30000 + rnd.Next(ports));
            var b = PacketBuilder.Ipv4(src, rnd.Next(3) == 0 ? "198.51.100.3" : "198.51.100.2");
            byte[] bytes = udp ? b.Udp(sport, 53).Build() : b.Tcp(sport, inPorts[rnd.Next(inPorts.Length)], TcpFlags.Syn, seq: (uint)rnd.Next()).Build();
            string a = flat.Run(EngineHost.In("eth0", bytes, now));
            string l = linear.Run(EngineHost.In("eth0", (byte[])bytes.Clone(), now));
            a.ShouldBe(l, $"packet {i}");
        }
        flat.Listing.ShouldBe(linear.Listing);
        flat.Listing.ShouldContain("10.0.1.4");
    }
}
