using Chainwalk.Host;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The flat walk's tight loop for a trusted, untraced walk (<c>WalkTight</c>, session 10 walktight) against the general loop
/// alone (<see cref="Netfilter.TightWalk"/> false), over rule sets that take every way through it and every hand-over to the
/// general loop (a generic entry, a target extension that changes the header or not, a chain without entries, a jump
/// after an edit): the same verdict, mark, packet bytes, the context's rule number and index, every rule's and policy's
/// counters, and the same statistic draws (the next draw of both generators after the walks).
/// </summary>
public class FlatTightTests
{
    private const string Head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n";

    public static TheoryData<string, string> RuleSets() => new()
    {
        {
            "jumps, returns, gotos, calls in place, inline marks",
            Head + ":A - [0:0]\n:B - [0:0]\n:E - [0:0]\n:M - [0:0]\n"
            + "-A FORWARD -m comment --comment first -j E\n-A FORWARD -j M\n-A FORWARD -p udp -j A\n-A FORWARD -p tcp -j A\n"
            + "-A FORWARD -m mark --mark 0x1/0x1 -j ACCEPT\n-A FORWARD -d 10.0.0.0/8 -g B\n-A FORWARD -j ACCEPT\n"
            + "-A A -m mark --mark 0x10/0x10 -j RETURN\n-A A -s 192.168.0.0/24 -j MARK --xor-mark 0x1\n-A A -j B\n-A A -m mark --mark 0x100/0x100 -j DROP\n"
            + "-A B -p tcp --dport 80 -j MARK --or-mark 0x100\n-A B -p tcp --sport 1000:2000 -j RETURN\n-A B ! -s 192.168.0.2/32 -j ACCEPT\n"
            + "-A M -j MARK --or-mark 0x4000\nCOMMIT\n"
        },
        {
            "statistic draws, ctstate, multiport, an interface (generic entries)",
            Head + ":S - [0:0]\n:T - [0:0]\n"
            + "-A FORWARD -m conntrack --ctstate INVALID -j DROP\n-A FORWARD -i eth9 -j DROP\n-A FORWARD -p tcp -m multiport --dports 22,443 -j T\n"
            + "-A FORWARD -j S\n-A FORWARD -m mark --mark 0x3/0x3 -j DROP\n"
            + "-A S -m statistic --mode random --probability 0.33 -j MARK --or-mark 0x1\n-A S -m statistic --mode random --probability 0.5 -j MARK --or-mark 0x2\n"
            + "-A S -m statistic --mode random ! --probability 0.5 -j RETURN\n-A S -j T\n"
            + "-A T -i eth0 -j MARK --xor-mark 0x8\n-A T -m mark --mark 0x8/0x8 -j ACCEPT\nCOMMIT\n"
        },
        {
            "a target extension that changes the header, then more rules (mangle)",
            "*mangle\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:D - [0:0]\n"
            + "-A FORWARD -j D\n-A FORWARD -m dscp --dscp 0x2e -j MARK --or-mark 0x20\n-A FORWARD -m mark --mark 0x20/0x20 -j ACCEPT\n-A FORWARD -j DROP\n"
            + "-A D -p tcp --dport 80 -j DSCP --set-dscp 0x2e\n-A D -j MARK --xor-mark 0x1\n-A D -m mark --mark 0x1/0x1 -j RETURN\n-A D -j TOS --set-tos 0x10\nCOMMIT\n"
        },
        {
            "many rules (an index), deep nesting",
            Head + string.Concat(Enumerable.Range(1, 6).Select(n => $":N{n} - [0:0]\n"))
            + string.Concat(Enumerable.Range(0, 60).Select(n => $"-A FORWARD -s 172.16.{n}.0/24 -d 10.{n}.0.0/16 -p tcp --dport {1000 + n} -j N1\n"))
            + "-A FORWARD -d 10.0.0.1/32 -p tcp --dport 80 -j N1\n-A FORWARD -s 192.168.0.0/16 -j DROP\n"
            + string.Concat(Enumerable.Range(1, 5).Select(n => $"-A N{n} -m mark --mark 0x{1 << n:x}/0x{1 << n:x} -j RETURN\n-A N{n} -j N{n + 1}\n"))
            + "-A N6 -j MARK --or-mark 0x1000\n-A N6 -p tcp --sport 1234 -j ACCEPT\nCOMMIT\n"
        },
    };

    private static readonly uint[] Marks = [0, 0x1, 0x2, 0x3, 0x8, 0x10, 0x11, 0x100, 0x4000, 0x4, 0x24, 0xffff_ffff];

    private static IEnumerable<byte[]> Packets()
    {
        foreach (string src in new[] { "192.168.0.2", "192.168.0.9", "172.16.3.4", "203.0.113.7" })
        foreach (string dst in new[] { "10.0.0.1", "10.3.0.9", "198.51.100.1" })
        {
            yield return PacketBuilder.Ipv4(src, dst).Tcp(1234, 80, TcpFlags.Syn).Build();
            yield return PacketBuilder.Ipv4(src, dst).Tcp(1500, 1003, TcpFlags.Syn).Build();
            yield return PacketBuilder.Ipv4(src, dst).Tcp(40000, 443, TcpFlags.Syn).Build();
            yield return PacketBuilder.Ipv4(src, dst).Udp(5353, 80).Build();
        }
    }

    private sealed class Side
    {
        public readonly VirtualHost Host;
        public readonly Netfilter Nf;

        public Side(string rules, bool tight)
        {
            Host = EngineHost.Create(rules);
            Nf = new Netfilter(Host) { Compiled = CompiledRules.Build(Host.V4), TightWalk = tight };
        }

        public (Verdict Verdict, uint Mark, byte[] Bytes, int RuleNumber, int RuleIndex) Walk(byte[] bytes, string table, uint mark, string inDev, CtInfo info)
        {
            var skb = new Skb(Packet.Parse((byte[])bytes.Clone())) { InDev = inDev, OutDev = "eth1", Mark = mark, CtInfo = info };
            var ctx = new PacketContext(Nf, skb) { Hook = Hook.Forward };
            Verdict v = Nf.RunTable(ctx, Host.V4.Find(table)!, Hook.Forward);
            return (v, skb.Mark, skb.Packet.Bytes.ToArray(), ctx.RuleNumber, ctx.RuleIndex);
        }
    }

    [Theory]
    [MemberData(nameof(RuleSets))]
    public void The_tight_loop_is_the_general_loops(string what, string rules)
    {
        string table = rules.StartsWith("*mangle", StringComparison.Ordinal) ? "mangle" : "filter";
        Side general = new(rules, tight: false), tight = new(rules, tight: true);
        int n = 0;
        foreach (byte[] p in Packets())
        foreach (uint mark in Marks)
        foreach (string inDev in new[] { "eth0", "eth9" })
        foreach (CtInfo info in new[] { CtInfo.New, CtInfo.Established })
        {
            var a = general.Walk(p, table, mark, inDev, info);
            var b = tight.Walk(p, table, mark, inDev, info);
            string at = $"{what}: packet {n}, mark {mark:x}, {inDev}, {info}";
            b.Verdict.ShouldBe(a.Verdict, at);
            b.Mark.ShouldBe(a.Mark, at);
            b.Bytes.ShouldBe(a.Bytes, at);
            (b.RuleNumber, b.RuleIndex).ShouldBe((a.RuleNumber, a.RuleIndex), at);
            n++;
        }
        // The same draws in the same order: the generators are at the same place.
        tight.Nf.State.Random.Next().ShouldBe(general.Nf.State.Random.Next(), what);
        Table ta = general.Host.V4.Find(table)!, tb = tight.Host.V4.Find(table)!;
        ulong counted = 0;
        foreach (Chain ca in ta.Chains)
        {
            Chain cb = tb.Find(ca.Name)!;
            (cb.Counters.Packets, cb.Counters.Bytes).ShouldBe((ca.Counters.Packets, ca.Counters.Bytes), $"{what}: policy of {ca.Name}");
            for (int i = 0; i < ca.Rules.Count; i++)
            {
                (cb.Rules[i].Counters.Packets, cb.Rules[i].Counters.Bytes).ShouldBe((ca.Rules[i].Counters.Packets, ca.Rules[i].Counters.Bytes), $"{what}: {ca.Name} rule {i + 1}");
                counted += ca.Rules[i].Counters.Packets;
            }
        }
        // The walks matched rules (most packets at least one).
        counted.ShouldBeGreaterThan((ulong)n / 2);
    }
}
