using Chainwalk.Engine.Compiled;
using Chainwalk.Rules;

namespace Chainwalk.Engine;

/// <summary>
/// The class walk: a base chain whose every reachable rule tests only the skb mark and the conntrack state (no address,
/// protocol, port, interface, random draw or extension match; no index) and whose targets are verdicts, jumps, gotos,
/// RETURN, MARK from the entry or MASQUERADE walks the same path for every packet of the same mark and ctinfo
/// (kube-proxy's filter FORWARD: a new connection's KUBE-PROXY-FIREWALL, KUBE-FORWARD and their ctstate and mark tests;
/// nat POSTROUTING: KUBE-POSTROUTING's mark test, its MARK and MASQUERADE). The flat walk's path for a (mark, state) pair
/// is remembered per table and hook (its counted entries, the policy if it ended there, the verdict, the mark it left and
/// the context's rule number, or the MASQUERADE rule it ended at) and replayed for the next packets of that pair: the same
/// counters, verdict and mark as the walk, without it; a MASQUERADE at the end is executed again, as the walk would
/// (its binding depends on the packet). MASQUERADE only: its verdict is always final (ACCEPT or DROP, NatTargets.Masquerade),
/// so the walk never goes on after it.
/// </summary>
public sealed partial class Netfilter
{
    /// <summary>Off: every packet is walked (the reference the tests compare with).</summary>
    internal bool ClassWalk { get; set; } = true;

    /// <summary>Per table and hook: whether its base chain is a class chain in a compiled form (at one count of the table's edits), and its remembered paths.</summary>
    private sealed class ClassWalkMemo
    {
        public required CompiledRules Form;
        public required FlatEntry[] Entries;
        public required int Number;
        public required int Edits;
        public required bool ClassOnly;

        /// <summary>The remembered paths, most recent first replaced round-robin.</summary>
        public readonly ClassPath?[] Paths = new ClassPath?[4];

        public int Next;
    }

    /// <summary>One remembered walk of a class chain for one (mark, state) pair.</summary>
    private sealed class ClassPath
    {
        public required uint Mark;
        public required int State;
        public required Verdict Verdict;
        public required uint FinalMark;

        /// <summary>Whether the walk counted a rule (and so left the context's rule number and index as below).</summary>
        public required bool HasRule;

        public required int RuleNumber;
        public required int RuleIndex;

        /// <summary>The counted entries, in the walk's order (all counted beside their entries).</summary>
        public required int[] Slots;

        /// <summary>The walk ended at the base chain's policy (read again at each replay: a -P does not count as a rule edit).</summary>
        public required bool Policy;

        /// <summary>The walk ended at a MASQUERADE: its entry (the last of <see cref="Slots"/>; -1: none), chain and rule, executed again at each replay.</summary>
        public required int EndSlot;

        public required Chain? EndChain;
        public required Rule? EndRule;
    }

    private readonly FlowWalkRecorder _classRecorder = new();

    /// <summary>Walks replayed from a remembered path (for tests: that the class walk was taken).</summary>
    internal long ClassReplays { get; private set; }

    /// <summary>
    /// The packet's state as a class chain's ctstate tests read it (<see cref="FlatOp.CtState"/>: its ctinfo; INVALID, 0,
    /// when it has no conntrack entry and is not untracked).
    /// </summary>
    private static int ClassState(Skb skb)
    {
        int n = (int)skb.CtInfo;
        if (n != (int)CtInfo.Untracked && skb.Conntrack is not global::Chainwalk.Conntrack.ConnEntry) n = 0;
        return n;
    }

    /// <summary>
    /// <see cref="WalkFlat"/> of base chain <paramref name="number"/>, or the replay of its remembered path when the chain is
    /// a class chain (see the file's summary) and its path for the packet's mark and state is known.
    /// </summary>
    private Verdict WalkFlatOrClass(PacketContext ctx, Table table, Chain baseChain, int number, CompiledRules form, ref FlowKey key, ref ClassWalkMemo? slot)
    {
        ClassWalkMemo? memo = slot;
        if (memo is null || !ReferenceEquals(memo.Form, form) || memo.Number != number || memo.Edits != table.RuleEdits)
            slot = memo = NewClassMemo(form, number, table);
        if (!memo.ClassOnly || !ClassWalk || ctx.Recording is not null || form.Superseded || !ReferenceEquals(memo.Entries, form.Entries)
            || !form.Trusted(number, table))
            return WalkFlat(ctx, table, baseChain, number, form, ref key);
        Skb skb = ctx.Skb;
        uint mark = skb.Mark;
        int state = ClassState(skb);
        ClassPath?[] paths = memo.Paths;
        for (int k = 0; k < paths.Length; k++)
        {
            if (paths[k] is { } p && p.Mark == mark && p.State == state) return Replay(ctx, skb, baseChain, form, memo.Entries, p);
        }
        // Walked and remembered.
        FlowWalkRecorder rec = _classRecorder;
        rec.Clear();
        Verdict v;
        ctx.Recording = rec;
        try
        {
            v = WalkFlat(ctx, table, baseChain, number, form, ref key);
        }
        finally
        {
            ctx.Recording = null;
        }
        int[]? slots = rec.Slots();
        if (v.Kind is not (VerdictKind.Accept or VerdictKind.Drop) || rec.Count > 0 && (slots is null || Array.IndexOf(slots, -1) >= 0)
            || table.RuleEdits != memo.Edits || form.Superseded || !ReferenceEquals(memo.Entries, form.Entries))
            return v;
        // The last counted entry a target extension that is not MARK from the entry: a MASQUERADE (ClassEntry), where the walk ended.
        int end = slots is { Length: > 0 } ? slots[^1] : -1;
        if (end >= 0 && (memo.Entries[end].Target != FlatTarget.Extension || (memo.Entries[end].Flags & FlatFlags.InlineMark) != 0)) end = -1;
        paths[memo.Next] = new ClassPath
        {
            Mark = mark, State = state, Verdict = v, FinalMark = skb.Mark, HasRule = rec.Count > 0, RuleNumber = ctx.RuleNumber,
            RuleIndex = ctx.RuleIndex, Slots = slots ?? [], Policy = rec.Policy is not null,
            EndSlot = end, EndChain = end >= 0 ? ctx.CurrentChain : null, EndRule = end >= 0 ? ctx.Rule : null,
        };
        memo.Next = (memo.Next + 1) % paths.Length;
        return v;
    }

    /// <summary>A remembered path's counters, mark, context and verdict, as its walk left them.</summary>
    private Verdict Replay(PacketContext ctx, Skb skb, Chain baseChain, CompiledRules form, FlatEntry[] all, ClassPath p)
    {
        ClassReplays++;
        ulong length = (ulong)skb.Length;
        int[] slots = p.Slots;
        for (int k = 0; k < slots.Length; k++)
        {
            ref Counters c = ref all[slots[k]].Counters;
            c.Packets++;
            c.Bytes += length;
        }
        skb.Mark = p.FinalMark;
        if (p.HasRule)
        {
            ctx.RuleNumber = p.RuleNumber;
            ctx.RuleIndex = p.RuleIndex;
        }
        if (p.EndSlot >= 0) return EndTarget(ctx, form, in all[p.EndSlot], p);
        return p.Policy ? Policy(ctx, baseChain, null, skb) : p.Verdict;
    }

    /// <summary>The MASQUERADE a remembered path ended at, called as the flat walk calls a target extension (the context's rule and chain set, no match slot).</summary>
    private static Verdict EndTarget(PacketContext ctx, CompiledRules form, in FlatEntry e, ClassPath p)
    {
        Rule rule = p.EndRule!;
        if (!ReferenceEquals(ctx.Rule, rule)) ctx.Rule = rule;
        if (!ReferenceEquals(ctx.CurrentChain, p.EndChain)) ctx.CurrentChain = p.EndChain;
        ctx.Slot = -1;
        Extensions.ExtensionData?[] targets = form.Targets;
        Extensions.XtExtension[] extensions = form.TargetExtensions;
        if ((uint)e.Jump < (uint)targets.Length && (uint)e.JumpStart < (uint)extensions.Length) return extensions[e.JumpStart].Execute(ctx, targets[e.Jump]!);
        TargetUse target = rule.Target!;
        return target.Extension!.Execute(ctx, target.Data!);
    }

    /// <summary>Whether base chain <paramref name="number"/> of <paramref name="form"/> is a class chain: every entry it reaches tests only the mark and ctstate, and no target does more than a verdict, a jump by number or MARK from the entry.</summary>
    private static ClassWalkMemo NewClassMemo(CompiledRules form, int number, Table table)
    {
        FlatSpan[] spans = form.Spans;
        FlatEntry[] all = form.Entries;
        bool classOnly = form.Trusted(number, table);
        var seen = new HashSet<int>();
        var pending = new Stack<int>();
        pending.Push(number);
        seen.Add(number);
        while (classOnly && pending.Count > 0)
        {
            int cn = pending.Pop();
            ref FlatSpan s = ref spans[cn];
            if (s.IndexNo >= 0 || s.Count < 0 || s.Count > 0 && (s.Start < 0 || s.Start + s.Count > all.Length))
            {
                classOnly = false;
                break;
            }
            for (int i = 0; i < s.Count && classOnly; i++)
            {
                ref FlatEntry e = ref all[s.Start + i];
                classOnly = ClassEntry(in e, spans.Length, form.TargetExtensions);
                if (classOnly && e.Target is FlatTarget.Jump or FlatTarget.Goto && seen.Add(e.Jump)) pending.Push(e.Jump);
            }
        }
        return new ClassWalkMemo { Form = form, Entries = all, Number = number, Edits = table.RuleEdits, ClassOnly = classOnly };
    }

    /// <summary>An entry of a class chain: any address, no -p, no inversion, counted beside itself; mark and ctstate tests only; a verdict, a jump by number, MARK from the entry or MASQUERADE (from the form's target slot).</summary>
    private static bool ClassEntry(in FlatEntry e, int chains, Extensions.XtExtension[] extensions)
    {
        if ((e.Flags & ~FlatFlags.InlineMark) != 0 || e.SourceShift < 32 || e.DestinationShift < 32) return false;
        for (uint ops = e.Ops; ops != 0; ops >>= 4)
        {
            if ((FlatOp)(ops & 0xF) is not (FlatOp.Skip or FlatOp.Mark or FlatOp.MarkInverted or FlatOp.CtState)) return false;
        }
        return e.Target switch
        {
            FlatTarget.None or FlatTarget.Accept or FlatTarget.Drop or FlatTarget.Return => (e.Flags & FlatFlags.InlineMark) == 0,
            FlatTarget.Jump or FlatTarget.Goto => (e.Flags & FlatFlags.InlineMark) == 0 && (uint)e.Jump < (uint)chains,
            FlatTarget.Extension => (e.Flags & FlatFlags.InlineMark) != 0
                || (uint)e.JumpStart < (uint)extensions.Length && extensions[e.JumpStart] is Extensions.Targets.MasqueradeTarget,
            _ => false,
        };
    }
}
