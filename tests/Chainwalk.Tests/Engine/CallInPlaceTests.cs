using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The flat walk does a trusted jump into an empty chain, or into a chain of one unconditional MARK from the entry
/// (kube-proxy's KUBE-PROXY-FIREWALL and KUBE-MARK-MASQ), without entering it (session 10, walkrec); every other callee is
/// entered. Either way the walk is the linear walk's: verdicts, the mark after the walk, and every rule's and policy's
/// counters, for callees that qualify and for the near misses that must not (a condition, an inversion, a second rule,
/// another target, a goto), called once or twice (an xor applied twice), and at the jump stack's limit. And the return
/// points the walk keeps without references (the chain and index read back from the span) against those that must keep
/// them: a chain made after the build has no span.
/// </summary>
public class CallInPlaceTests
{
    private static readonly byte[] Syn = PacketBuilder.Ipv4("192.168.0.2", "10.0.0.1").Tcp(1234, 80, TcpFlags.Syn).Build();

    public static TheoryData<string, string> Callees()
    {
        string[] callees =
        [
            "",
            "-A C -j MARK --set-xmark 0x10/0xff",
            "-A C -j MARK --or-mark 0x4000",
            "-A C -j MARK --xor-mark 0x11",
            "-A C -j MARK --and-mark 0xf0",
            "-A C -j MARK --set-mark 0x4010",
            "-A C -m comment --comment \"mark for SNAT\" -j MARK --or-mark 0x4000",
            "-A C -s 192.168.0.2/32 -j MARK --set-mark 0x10",
            "-A C -s 10.9.9.9/32 -j MARK --set-mark 0x10",
            "-A C ! -s 10.9.9.9/32 -j MARK --set-mark 0x10",
            "-A C -d 10.0.0.0/8 -j MARK --xor-mark 0x11",
            "-A C -p tcp -j MARK --set-mark 0x10",
            "-A C -p udp -j MARK --set-mark 0x10",
            "-A C ! -p udp -j MARK --set-mark 0x10",
            "-A C -m mark --mark 0x0/0x1 -j MARK --xor-mark 0x11",
            "-A C -i eth0 -j MARK --set-mark 0x10",
            "-A C -j ACCEPT",
            "-A C -j DROP",
            "-A C -j RETURN",
            "-A C -m comment --comment nothing",
            "-A C -j MARK --xor-mark 0x11\n-A C -j MARK --xor-mark 0x4000",
            "-A C -j MARK --or-mark 0x10\n-A C -j ACCEPT",
        ];
        var d = new TheoryData<string, string>();
        foreach (string c in callees)
        {
            d.Add(c, "-j C");
            d.Add(c, "-g C");
        }
        return d;
    }

    /// <summary>
    /// FORWARD calls C (jump or goto), tests the mark, calls C again and tests it again; the packet arrives with marks that
    /// make each test go both ways. The linear walk and the flat walk agree on everything.
    /// </summary>
    [Theory]
    [MemberData(nameof(Callees))]
    public void A_call_of_a_short_chain_is_the_linear_walks(string callee, string call)
    {
        string rules = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:C - [0:0]\n"
            + $"-A FORWARD -m comment --comment first {call}\n"
            + "-A FORWARD -m mark --mark 0x10/0xff -j ACCEPT\n"
            + "-A FORWARD -m mark --mark 0x4000/0x4000 -j DROP\n"
            + $"-A FORWARD {call}\n"
            + "-A FORWARD -m mark --mark 0x1/0x1 -j ACCEPT\n"
            + "-A FORWARD -m mark --mark 0x0/0xffff -j ACCEPT\n"
            + (callee.Length == 0 ? "" : callee + "\n")
            + "COMMIT\n";
        var two = new CompiledClassificationTests.Pair(rules);
        foreach (uint mark in new uint[] { 0, 0x1, 0x10, 0x11, 0xff, 0x4000, 0x4001, 0xffff_ffff })
        {
            two.WalkTracked(Syn, "filter", Hook.Forward, CtInfo.New, null, mark);
        }
        // Every rule counted somewhere across the marks (the walks reached the calls).
        two.Rule("filter", "FORWARD", 1).Packets.ShouldBe(8UL);
    }

    /// <summary>
    /// A call made in place at the deepest nest a restore accepts (NFT_JUMP_STACK_SIZE 16: the called chain 15 jumps below
    /// FORWARD, JumpDepthTests) and above it: the innermost chain calls an empty chain or a MARK chain, then returns.
    /// </summary>
    [Theory]
    [InlineData(1, "")]
    [InlineData(13, "")]
    [InlineData(14, "")]
    [InlineData(1, "-A M -j MARK --or-mark 0x4000")]
    [InlineData(13, "-A M -j MARK --or-mark 0x4000")]
    [InlineData(14, "-A M -j MARK --or-mark 0x4000")]
    public void A_call_in_place_at_the_jump_stacks_limit_is_the_linear_walks(int depth, string callee)
    {
        var lines = new List<string> { "*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", ":M - [0:0]" };
        for (int i = 1; i <= depth; i++) lines.Add($":N{i} - [0:0]");
        lines.Add("-A FORWARD -j N1");
        lines.Add("-A FORWARD -m mark --mark 0x4000/0x4000 -j DROP");
        for (int i = 1; i < depth; i++) lines.Add($"-A N{i} -j N{i + 1}");
        lines.Add($"-A N{depth} -j M");
        lines.Add($"-A N{depth} -j RETURN");
        if (callee.Length > 0) lines.Add(callee);
        lines.Add("COMMIT");
        var two = new CompiledClassificationTests.Pair(string.Join('\n', lines) + "\n");
        two.WalkTracked(Syn, "filter", Hook.Forward, CtInfo.New, null, 0);
        two.WalkTracked(Syn, "filter", Hook.Forward, CtInfo.New, null, 0x4000);
    }

    /// <summary>
    /// After the build a new chain X (no number, no span in the compiled form) is called from FORWARD and itself calls C and
    /// D (chains of the form); the walk comes back into X after each and goes on there: its return point must hold X itself.
    /// </summary>
    [Theory]
    [InlineData(0u)]
    [InlineData(0x10u)]
    [InlineData(0x20u)]
    [InlineData(0x30u)]
    public void A_return_into_a_chain_made_after_the_build_is_the_linear_walks(uint mark)
    {
        const string head = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:C - [0:0]\n:D - [0:0]\n";
        var two = new CompiledClassificationTests.Pair(head
            + "-A FORWARD -m mark --mark 0x40/0x40 -j ACCEPT\n"
            + "-A C -m mark --mark 0x20/0x20 -j RETURN\n-A C -j MARK --xor-mark 0x1\n"
            + "-A D -m mark --mark 0x1/0x1 -j MARK --or-mark 0x100\n-A D -j RETURN\n"
            + "COMMIT\n");
        two.WalkTracked(Syn, "filter", Hook.Forward, CtInfo.New, null, mark);
        Chain made = EngineHost.Rules(IpFamily.V4, head + ":X - [0:0]\n"
            + "-A X -j C\n-A X -m mark --mark 0x1/0x1 -j D\n-A X -m mark --mark 0x101/0x101 -j ACCEPT\n-A X -m mark --mark 0x10/0x10 -j DROP\n"
            + "-A FORWARD -j X\nCOMMIT\n").Find("filter")!.Find("X")!;
        two.Edit(rules =>
        {
            var editor = new RulesetEditor(rules);
            editor.NewChain("filter", "X");
            editor.Append("filter", "X", made.Rules.Select(r => r.Clone()).ToList());
            editor.Insert("filter", "FORWARD", 1, [EngineHost.Rules(IpFamily.V4, head + ":X - [0:0]\n-A FORWARD -j X\nCOMMIT\n").Find("filter")!.Find("FORWARD")!.Rules[0]]);
        });
        two.ChainB("filter", "X").ShouldNotBeNull();
        two.Compiled.FlatFor(two.ChainB("filter", "X")).ShouldBeNull();
        for (int k = 0; k < 3; k++) two.WalkTracked(Syn, "filter", Hook.Forward, CtInfo.New, null, mark);
    }
}
