using System.Text;
using Chainwalk.Engine;
using Chainwalk.Engine.Compiled;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The compiled form's one entries array (every chain a range of it) and the counters beside the entries: a rule in a
/// compiled form has its counters in its entry, and <see cref="Rule.Counters"/> reads through to them. Against the linear
/// walk of a second copy of the rules (the reference), verdicts and every counter after every packet, and the
/// iptables-save -c text: across edits that rebuild or move a chain, zeroing, a rename, the form given up
/// (<see cref="CompiledRules.Release"/>) and a second form built over the same rules.
/// </summary>
public class TableWideTests
{
    private const string Base = """
        *filter
        :INPUT ACCEPT [3:180]
        :FORWARD DROP [5:300]
        :OUTPUT ACCEPT [0:0]
        :U1 - [0:0]
        :U2 - [0:0]
        [7:420] -A FORWARD -p tcp -m tcp --dport 22 -j U1
        [1:60] -A FORWARD -p udp -j U2
        -A FORWARD -s 10.1.2.0/24 -j U1
        [2:100] -A FORWARD -p tcp -m tcp --dport 80 -j ACCEPT
        -A FORWARD -m mark --mark 0x1 -j ACCEPT
        [9:900] -A U1 -s 10.1.2.3/32 -j RETURN
        -A U1 -p tcp -m tcp --dport 22 -j ACCEPT
        -A U1 -j U2
        [4:240] -A U2 -p udp -m udp --dport 53 -j ACCEPT
        -A U2 -d 10.3.3.4/32 -j DROP
        COMMIT

        """;

    private static Rule ParseRule(string spec) =>
        EngineHost.Rules(Chainwalk.Net.IpFamily.V4, "*filter\n:X - [0:0]\n:U1 - [0:0]\n:U2 - [0:0]\n:U3 - [0:0]\n-A X " + spec + "\nCOMMIT\n").Find("filter")!.Find("X")!.Rules[0];

    private static void Packets(CompiledClassificationTests.Pair pair, Random rnd, int n)
    {
        for (int k = 0; k < n; k++)
            pair.Walk(CompiledClassificationTests.RandomPacket(rnd), "filter", Hook.Forward, mark: (uint)rnd.Next(2));
    }

    private static void SameSave(CompiledClassificationTests.Pair pair) =>
        SaveWriter.Write(pair.B, counters: true, stamp: "x").ShouldBe(SaveWriter.Write(pair.A, counters: true, stamp: "x"));

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Counters_survive_a_compiled_form_built_edited_zeroed_given_up_and_replaced(int seed)
    {
        var rnd = new Random(seed);
        var pair = new CompiledClassificationTests.Pair(Base);
        // The loaded counters moved into the entries and read back through the rules.
        pair.ChainB("filter", "U1").Rules[0].CounterHome.ShouldBeSameAs(pair.Compiled);
        pair.SameCounters();
        SameSave(pair);
        pair.Compiled.FlatFor(pair.ChainB("filter", "U1"))!.Value.Entries[0].Counters.ShouldBe(new Counters(9, 900));
        Packets(pair, rnd, 200);
        string[] edits =
        [
            "-I U1 2 -p udp -j RETURN", "-A U2 -p tcp -j ACCEPT", "-D U1 1", "-R U2 1 -p udp -m udp --dport 54 -j ACCEPT",
            "-Z U1", "-Z FORWARD 4", "-A U1 -s 10.1.2.0/24 -j U2", "-I FORWARD 1 -p icmp -j U2", "-E U2 U3", "-D FORWARD 2",
        ];
        foreach (string edit in edits)
        {
            string[] w = edit.Split(' ', 4);
            string chain = w[1];
            pair.Edit(r =>
            {
                var ed = new RulesetEditor(r);
                switch (w[0])
                {
                    case "-I": ed.Insert("filter", chain, int.Parse(w[2]), [ParseRule(w[3])]); break;
                    case "-A": ed.Append("filter", chain, [ParseRule(edit.Split(' ', 3)[2])]); break;
                    case "-D": ed.DeleteNumber("filter", chain, int.Parse(w[2])); break;
                    case "-R": ed.Replace("filter", chain, int.Parse(w[2]), ParseRule(w[3])); break;
                    case "-Z": ed.Zero("filter", chain, w.Length > 2 ? int.Parse(w[2]) : 0); break;
                    case "-E": ed.RenameChain("filter", chain, w[2]); break;
                }
            });
            pair.SameCounters();
            Packets(pair, rnd, 150);
            SameSave(pair);
        }
        // Given up: the counters go back to the rules, and walks with the form count there.
        CompiledRules first = pair.Compiled;
        first.Release();
        first.Superseded.ShouldBeTrue();
        pair.SameCounters();
        Packets(pair, rnd, 100);
        SameSave(pair);
        // A second form over the same rules takes the counters; the first, still walking, counts on the rules (through the second).
        CompiledRules second = CompiledRules.Build(pair.B);
        pair.SameCounters();
        Packets(pair, rnd, 100);
        pair.Use(second);
        Packets(pair, rnd, 100);
        CompiledRules third = CompiledRules.Build(pair.B);
        second.Superseded.ShouldBeTrue();
        third.Superseded.ShouldBeFalse();
        Packets(pair, rnd, 100);
        pair.Use(null);
        Packets(pair, rnd, 50);
        SameSave(pair);
    }

    /// <summary>
    /// A short chain appended to between packets outgrows its room in the one array: it is built again at the array's end
    /// (the jumps to it follow its span; their entries' hints go stale), its counters move with it.
    /// </summary>
    [Fact]
    public void A_chain_that_outgrows_its_room_moves_to_the_end_and_keeps_its_counters()
    {
        var rnd = new Random(7);
        var pair = new CompiledClassificationTests.Pair(Base);
        Chain u2 = pair.ChainB("filter", "U2");
        int start = pair.Compiled.FlatFor(u2)!.Value.Start;
        int moves = 0;
        for (int n = 0; n < 40; n++)
        {
            string spec = $"-s 10.{n}.0.0/16 -p udp -m udp --dport {1000 + n} -j ACCEPT";
            pair.Edit(r => new RulesetEditor(r).Append("filter", "U2", [ParseRule(spec)]));
            Packets(pair, rnd, 30);
            int now = pair.Compiled.FlatFor(u2)!.Value.Start;
            if (now != start) moves++;
            start = now;
            pair.Compiled.FlatFor(u2)!.Value.Entries.Length.ShouldBe(u2.Rules.Count);
        }
        // Room of half again: a few moves for 40 appends, not one per append.
        moves.ShouldBeInRange(2, 10);
        pair.Compiled.AbandonedEntries.ShouldBeGreaterThan(0);
        SameSave(pair);
    }

    /// <summary>One rule object in two chains (a library user may build that): one entry holds its counters, the other counts on the rule.</summary>
    [Fact]
    public void A_rule_object_in_two_chains_is_counted_at_both_places_once_each()
    {
        var rnd = new Random(11);
        string rules = Base.Replace("COMMIT", ":U4 - [0:0]\n-A FORWARD -j U4\nCOMMIT");
        var pair = new CompiledClassificationTests.Pair(rules);
        pair.Edit(r =>
        {
            Table t = r.Find("filter")!;
            t.Find("U4")!.Rules.Add(t.Find("U2")!.Rules[0]);
        });
        pair.Recompile("filter", "U4");
        FlatChain u4 = pair.Compiled.FlatFor(pair.ChainB("filter", "U4"))!.Value;
        (u4.Entries[0].Flags & FlatFlags.CountOnRule).ShouldBe(FlatFlags.CountOnRule);
        Packets(pair, rnd, 400);
        pair.ChainB("filter", "U4").Rules[0].Counters.Packets.ShouldBeGreaterThan(0UL);
        SameSave(pair);
    }

    /// <summary>What the form keeps per chain (a kube-proxy set has a chain per 2.8 rules): 32 bytes.</summary>
    [Fact]
    public void A_span_is_32_bytes() => System.Runtime.CompilerServices.Unsafe.SizeOf<FlatSpan>().ShouldBe(32);

    /// <summary>Every chain's entries are one array: the jumps hold the entered chain's number and where its entries start.</summary>
    [Fact]
    public void Jumps_hold_the_entered_chains_number_and_first_entry()
    {
        var pair = new CompiledClassificationTests.Pair(Base);
        FlatChain[] all = pair.Compiled.FlatChains;
        FlatChain forward = pair.Compiled.FlatFor(pair.ChainB("filter", "FORWARD"))!.Value;
        FlatEntry jump = forward.Entries[0];
        jump.Target.ShouldBe(FlatTarget.Jump);
        all[jump.Jump].Chain.Name.ShouldBe("U1");
        jump.JumpStart.ShouldBe(all[jump.Jump].Start);
        pair.Compiled.Entries.AsSpan(jump.JumpStart, 3).ToArray().Select(e => e.Rule).ShouldBe(pair.ChainB("filter", "U1").Rules.ToArray());
    }
    /// <summary>
    /// A built-in chain its index decides alone (ClassBench's shape) has no entries: its rules' counters live in the index,
    /// beside each rule's verdict; they follow an edit (overlay), a recompile, the key path, a second form and a release.
    /// </summary>
    [Fact]
    public void An_index_decided_chain_keeps_its_rules_counters_in_the_index()
    {
        var sb = new StringBuilder("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n");
        for (int i = 0; i < 64; i++)
            sb.Append('[').Append(i).Append(':').Append(i * 40).Append("] -A FORWARD -s 10.").Append(i % 4).Append('.').Append(i).Append(".0/24 -p tcp -m tcp --dport ")
                .Append(20 + i % 5).Append(" -j ").Append(i % 3 == 0 ? "DROP" : "ACCEPT").Append('\n');
        sb.Append("COMMIT\n");
        var rnd = new Random(3);
        var pair = new CompiledClassificationTests.Pair(sb.ToString());
        Chain fwd = pair.ChainB("filter", "FORWARD");
        FlatChain flat = pair.Compiled.FlatFor(fwd)!.Value;
        flat.Start.ShouldBe(-1);
        ChainIndex index = pair.IndexOf("filter", "FORWARD").ShouldNotBeNull();
        index.FullyPlain.ShouldBeTrue();
        fwd.Rules[3].CounterHome.ShouldBeSameAs(index);
        pair.SameCounters();
        void Walk(int n)
        {
            for (int k = 0; k < n; k++)
            {
                int i = rnd.Next(70);
                pair.Walk(PacketBuilder.Ipv4($"10.{i % 4}.{i}.7", "192.168.1.1").Tcp(4000, (ushort)(20 + rnd.Next(6)), TcpFlags.Syn).Build(), "filter", Hook.Forward);
            }
        }
        Walk(300);
        SameSave(pair);
        pair.Edit(r => new RulesetEditor(r).Insert("filter", "FORWARD", 5, [ParseRule("-s 10.1.5.0/24 -p tcp -m tcp --dport 22 -j ACCEPT")]));
        Walk(200);
        pair.Edit(r => new RulesetEditor(r).DeleteNumber("filter", "FORWARD", 9));
        Walk(200);
        SameSave(pair);
        pair.Recompile("filter", "FORWARD");
        Walk(200);
        SameSave(pair);
        pair.Edit(r => new RulesetEditor(r).Zero("filter", "FORWARD", 7));
        Walk(100);
        CompiledRules second = CompiledRules.Build(pair.B);
        Walk(100);
        pair.Use(second);
        Walk(100);
        fwd.Rules[3].CounterHome.ShouldBeSameAs(second.For(fwd));
        second.Release();
        fwd.Rules[3].CounterHome.ShouldBeNull();
        Walk(100);
        SameSave(pair);
    }
}
