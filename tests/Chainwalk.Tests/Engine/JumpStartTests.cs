using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Host;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A trusted jump of the flat walk takes where the entered chain's entries start from the entering entry
/// (<see cref="FlatEntry.JumpStart"/>, session 9 svcchain), so that their load does not wait on the span's; the span stays
/// the truth. The build keeps the two equal; a stale hint (forced here) is caught by the check and the walk is the
/// linear walk's still: verdicts, marks, counters and so the statistic draws.
/// </summary>
public class JumpStartTests
{
    /// <summary>kube-proxy's rules for <paramref name="services"/> services, DNAT as ACCEPT (the walk alone).</summary>
    private static (string Text, Chainwalk.Bench.KubeProxyRules.Service[] Services) Kube(int services)
    {
        var (text, svcs, _) = Chainwalk.Bench.KubeProxyRules.Generate(services, seed: 5);
        return (System.Text.RegularExpressions.Regex.Replace(text, "-j DNAT --to-destination [^ \n]+", "-j ACCEPT"), svcs);
    }

    /// <summary>Every jump or goto entry of a built form names the entered chain's entries as its span does.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(40)]
    [InlineData(300)]
    public void A_built_form_s_jump_entries_hold_the_entered_chain_s_start(int services)
    {
        VirtualHost host = EngineHost.Create(Kube(services).Text);
        CompiledRules compiled = CompiledRules.Build(host.V4);
        int jumps = 0;
        foreach (FlatSpan s in compiled.Spans)
        {
            if (s.Start < 0) continue;
            for (int i = 0; i < s.Count; i++)
            {
                FlatEntry e = compiled.Entries[s.Start + i];
                if (e.Target is not (FlatTarget.Jump or FlatTarget.Goto) || e.Jump < 0) continue;
                e.JumpStart.ShouldBe(compiled.Spans[e.Jump].Start, $"{s.Chain.Name} rule {i + 1}");
                jumps++;
            }
        }
        jumps.ShouldBeGreaterThan(services * 3);
    }

    /// <summary>
    /// Jump entries whose hint names other entries (the array's first, the entering chain's own, one past the array): the
    /// walk takes the span's start and agrees with the linear walk. Without the check the walk would test the wrong chain's
    /// rules (this test then fails).
    /// </summary>
    [Theory]
    [InlineData("zero")]
    [InlineData("self")]
    [InlineData("past")]
    [InlineData("none")]
    public void Stale_jump_hints_walk_as_the_linear_walk(string stale)
    {
        var (text, svcs) = Kube(60);
        VirtualHost ha = EngineHost.Create(text), hb = EngineHost.Create(text);
        var linear = new Netfilter(ha);
        CompiledRules compiled = CompiledRules.Build(hb.V4);
        var flat = new Netfilter(hb) { Compiled = compiled };
        FlatEntry[] all = compiled.Entries;
        foreach (FlatSpan s in compiled.Spans)
        {
            if (s.Start < 0) continue;
            for (int i = 0; i < s.Count; i++)
            {
                ref FlatEntry e = ref all[s.Start + i];
                if (e.Target is not (FlatTarget.Jump or FlatTarget.Goto) || e.Jump < 0) continue;
                e.JumpStart = stale switch
                {
                    "zero" => 0,
                    "self" => s.Start,
                    "past" => all.Length,
                    _ => -1,
                };
            }
        }
        var rnd = new Random(8);
        for (int n = 0; n < 200; n++)
        {
            var svc = svcs[rnd.Next(svcs.Length)];
            uint from = rnd.Next(3) == 0 ? 0x0AF40107u : 0xC0A80002u + (uint)rnd.Next(50);
            byte[] p = PacketBuilder.Ipv4(from, svc.ClusterIp).Tcp((ushort)(1024 + n), svc.Port, TcpFlags.Syn).Build();
            uint mark = (uint)rnd.Next(2) * 0x4000;
            foreach (var (table, hook) in new[] { ("nat", Hook.Prerouting), ("filter", Hook.Forward), ("nat", Hook.Postrouting) })
            {
                (Verdict va, uint ma) = Run(linear, ha.V4, p, table, hook, mark);
                (Verdict vb, uint mb) = Run(flat, hb.V4, p, table, hook, mark);
                vb.ShouldBe(va, $"packet {n} {table} {hook}");
                mb.ShouldBe(ma, $"packet {n} {table} {hook}");
            }
        }
        foreach (Table ta in ha.V4.Tables)
        {
            Table tb = hb.V4.Find(ta.Name)!;
            foreach (Chain ca in ta.Chains)
            {
                Chain cb = tb.Find(ca.Name)!;
                (cb.Counters.Packets, cb.Counters.Bytes).ShouldBe((ca.Counters.Packets, ca.Counters.Bytes), $"{ta.Name}/{ca.Name} policy");
                for (int i = 0; i < ca.Rules.Count; i++)
                {
                    Counters x = ca.Rules[i].Counters, y = cb.Rules[i].Counters;
                    (y.Packets, y.Bytes).ShouldBe((x.Packets, x.Bytes), $"{ta.Name}/{ca.Name} rule {i + 1}");
                }
            }
        }
    }

    private static (Verdict, uint) Run(Netfilter nf, Ruleset rules, byte[] bytes, string table, Hook hook, uint mark)
    {
        var skb = new Skb(Packet.Parse(bytes)) { InDev = "eth0", OutDev = "eth1", Mark = mark, CtInfo = CtInfo.New, Conntrack = new ConnEntry(default, default) };
        var ctx = new PacketContext(nf, skb) { Hook = hook };
        Verdict v = nf.RunTable(ctx, rules.Find(table)!, hook);
        return (v, skb.Mark);
    }
}
