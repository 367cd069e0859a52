using Chainwalk.Engine.Compiled;
using Chainwalk.Extensions.Matches;
using Chainwalk.Rules;

namespace Chainwalk.Engine;

/// <summary>
/// The walker over the compiled form's flat entries (<see cref="FlatEntry"/>, 40 bytes per rule): the same walk as
/// <c>Walk</c> (ipt_do_table: first match, jumps, gotos, RETURN, policy; counters on the rules), reading per rule
/// the entry instead of the rule objects, and jumping by chain number. The linear walk stays the reference: this one is
/// used only without a recorded trace, for a packet with a flow key (IPv4, not a fragment, TCP/UDP header present),
/// and when the base chain has a flat form; a chain without one (made after the build) or behind its edits is walked
/// through its rule objects here, and so is every rule once a target changed the packet so that it has no key.
/// </summary>
public sealed partial class Netfilter
{
    /// <summary>A return point of the flat walk: the chain, its flat form (or null: walked through the rule objects), the next rule.</summary>
    private record struct FlatFrame(Chain Chain, FlatChain? Flat, FlatEntry[]? Entries, ChainIndex? Index, int Next);

    private readonly List<FlatFrame[]> _flatStacks = new();

    private Verdict WalkFlat(PacketContext ctx, Table table, Chain baseChain, FlatChain baseFlat, CompiledRules compiled, FlowKey key)
    {
        // RunTable raised the depth already: one stack per nesting level (a REJECT reply walks OUTPUT mid-walk).
        while (_flatStacks.Count < _walkDepth) _flatStacks.Add(new FlatFrame[JumpStackSize + 1]);
        FlatFrame[] stack = _flatStacks[_walkDepth - 1];
        Skb skb = ctx.Skb;
        bool keyOk = true;
        Chain chain = baseChain;
        FlatChain? fc = baseFlat;
        // No rule of the table changed since it was compiled (RulesetEditor counts every change in Table.RuleEdits): every
        // chain's entries, index and jumps by number hold, and a jump reads one element of CompiledRules.Jumps. Else each
        // chain entered is checked against its own edits (and jumps against renames), as CompiledRules.For does.
        bool trusted = baseFlat.Owner.Edits == table.RuleEdits;
        FlatJump[] jumps = compiled.Jumps;
        FlatEntry[]? entries;
        ChainIndex? index;
        int count;
        if (trusted)
        {
            entries = baseFlat.Entries;
            index = baseFlat.Index;
            count = entries.Length;
        }
        else
        {
            Enter(compiled, chain, fc, out entries, out index, out count);
        }
        int sp = 0, i = 0;
        bool proven = false;
        FlatEntry scratch = default;
        while (true)
        {
            if (keyOk && index is not null)
            {
                i = index.Next(i, key, out proven);
                // As Walk: a proven rule with a plain ACCEPT or DROP ends the walk without the target dispatch.
                if (proven && index.PlainVerdict(i) is { Kind: not VerdictKind.Continue, Rule: { } hit } plain)
                    return PlainHit(ctx, chain, i, hit, plain.Kind, skb.Length);
            }
            if (index is not null && i < count && entries is not null) PrefetchCandidate(entries, i, jumps, trusted);
            if (i >= count)
            {
                // A built-in chain is never entered by a jump: the base chain is the only one of the walk.
                if (sp == 0 || ReferenceEquals(chain, baseChain)) return Policy(ctx, baseChain, null, skb);
                // The implicit RETURN at a user chain's end.
                TraceLine(ctx, chain, count + 1, "return");
                Pop(stack, ref sp, out chain, out fc, out i, out entries, out index);
                Return(compiled, trusted, chain, fc, ref entries, ref index, out count);
                continue;
            }
            if (entries is null) scratch = FlatEntry.Generic(chain.Rules[i]);
            ref readonly FlatEntry e = ref entries is null ? ref scratch : ref entries[i];
            Rule rule = e.Rule;
            ctx.RuleNumber = i + 1;
            ctx.RuleIndex = i;
            // The context's rule and chain (references: a GC write barrier each) are set for what reads them: a match
            // evaluated by its extension, and a rule that matched (its target). An inline test reads neither.
            bool ok;
            if (proven)
            {
                ok = true;
            }
            else if (keyOk && (e.Flags & (FlatFlags.Generic | FlatFlags.GenericOps)) == 0)
            {
                ok = MatchFlat(ctx, in e, in key);
            }
            else
            {
                if (!ReferenceEquals(ctx.Rule, rule)) ctx.Rule = rule;
                if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
                ok = keyOk && (e.Flags & FlatFlags.Generic) == 0 ? MatchFlat(ctx, in e, in key) : MatchRule(ctx, rule, false) is null;
            }
            proven = false;
            if (ctx.HotDrop)
            {
                ctx.HotDrop = false;
                return Verdict.Drop;
            }
            if (!ok)
            {
                i++;
                continue;
            }
            if (!ReferenceEquals(ctx.Rule, rule)) ctx.Rule = rule;
            if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
            rule.Counters.Packets++;
            rule.Counters.Bytes += (ulong)skb.Length;
            ctx.Recording?.Hit(rule);
            if (skb.Trace)
            {
                TraceLine(ctx, chain, i + 1, Unconditional(rule) && e.Target is FlatTarget.Accept or FlatTarget.Drop or FlatTarget.Return
                    ? (chain.IsBuiltin ? "policy" : "return") : "rule");
            }
            switch (e.Target)
            {
                case FlatTarget.None:
                    i++;
                    continue;
                case FlatTarget.Accept:
                    return Verdict.Accept;
                case FlatTarget.Drop:
                    return Verdict.Drop;
                case FlatTarget.Queue:
                    return Verdict.Queue(0);
                case FlatTarget.Return:
                    if (sp == 0) return Policy(ctx, baseChain, null, skb);
                    Pop(stack, ref sp, out chain, out fc, out i, out entries, out index);
                    Return(compiled, trusted, chain, fc, ref entries, ref index, out count);
                    continue;
                case FlatTarget.Jump:
                case FlatTarget.Goto:
                {
                    // By number when the entered chain still has the name it had when compiled (a rename sets another
                    // string); else by name, as Walk does.
                    if (trusted && e.Jump >= 0)
                    {
                        if (e.Target == FlatTarget.Jump)
                        {
                            if (sp >= JumpStackSize) return Verdict.Drop;
                            stack[sp++] = new FlatFrame(chain, fc, entries, index, i + 1);
                        }
                        ref readonly FlatJump j = ref jumps[e.Jump];
                        chain = j.Chain;
                        fc = j.Flat;
                        entries = j.Entries;
                        index = j.Index;
                        count = entries.Length;
                        i = 0;
                        if (index is null) PrefetchCounters(entries, jumps);
                        continue;
                    }
                    Chain? next = null;
                    FlatChain? nextFlat = null;
                    if (e.Jump >= 0)
                    {
                        FlatChain to = compiled.FlatChains[e.Jump];
                        if (ReferenceEquals(to.Chain.Name, to.Name))
                        {
                            next = to.Chain;
                            nextFlat = to;
                        }
                    }
                    if (next is null)
                    {
                        next = JumpChain(compiled, table, rule.Target!);
                        if (next is null)
                        {
                            i++;
                            continue;
                        }
                        nextFlat = compiled.FlatOf(next);
                    }
                    if (e.Target == FlatTarget.Jump)
                    {
                        if (sp >= JumpStackSize) return Verdict.Drop;
                        stack[sp++] = new FlatFrame(chain, fc, entries, index, i + 1);
                    }
                    chain = next;
                    fc = nextFlat;
                    i = 0;
                    Enter(compiled, trusted, chain, fc, out entries, out index, out count);
                    continue;
                }
            }
            // A target extension.
            ctx.RuleIndex = i;
            ctx.Slot = -1;
            TargetUse target = rule.Target!;
            Verdict v = target.Extension!.Execute(ctx, target.Data!);
            switch (v.Kind)
            {
                case VerdictKind.Continue:
                    // The target may have changed the header: read the key again (none, or traced from here: the rule objects).
                    keyOk = !skb.Trace && FlowKey.TryRead(skb.Packet, out key);
                    i++;
                    continue;
                case VerdictKind.Return:
                    keyOk = !skb.Trace && FlowKey.TryRead(skb.Packet, out key);
                    if (sp == 0) return Policy(ctx, baseChain, null, skb);
                    Pop(stack, ref sp, out chain, out fc, out i, out entries, out index);
                    Return(compiled, trusted, chain, fc, ref entries, ref index, out count);
                    continue;
                default:
                    return v;
            }
        }
    }

    /// <summary>
    /// Starts loading the counters of the first rules of a chain just entered (the rule objects are elsewhere in the heap,
    /// and cold in a large rule set): a rule that matches is counted on its object, and the loads of several rules then
    /// overlap instead of each waiting in turn when its rule matches (kube-proxy: KUBE-SVC-…'s masquerade and endpoint
    /// rules, KUBE-SEP-…'s DNAT).
    /// </summary>
    private static unsafe void PrefetchCounters(FlatEntry[] entries, FlatJump[] jumps)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        int n = Math.Min(entries.Length, 4);
        for (int k = 0; k < n; k++)
        {
            // A hint only: the address is the rule's counters now (were the object moved meanwhile, nothing happens).
            ref FlatEntry e = ref entries[k];
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref e.Rule.Counters));
            // A jump's element of CompiledRules.Jumps too (KUBE-SVC-…'s endpoint rules jump to cold KUBE-SEP-… chains).
            // Called on the trusted path only (the element is read by number there).
            if (e.Target is FlatTarget.Jump or FlatTarget.Goto && (uint)e.Jump < (uint)jumps.Length)
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref jumps[e.Jump]));
        }
    }

    /// <summary>
    /// The index named a candidate rule of a chain: its counters (on the rule object, cold in a large rule set) and, for a
    /// jump, the entered chain's element of <see cref="CompiledRules.Jumps"/> start loading together, before the entry is
    /// tested (kube-proxy's KUBE-SERVICES: the service's rule, proven by the index, then the jump to its KUBE-SVC-… chain:
    /// two misses in turn otherwise). Hints only.
    /// </summary>
    private static unsafe void PrefetchCandidate(FlatEntry[] entries, int i, FlatJump[] jumps, bool trusted)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        ref FlatEntry e = ref entries[i];
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref e.Rule.Counters));
        if (trusted && e.Target is FlatTarget.Jump or FlatTarget.Goto && (uint)e.Jump < (uint)jumps.Length)
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref jumps[e.Jump]));
    }

    private static void Pop(FlatFrame[] stack, ref int sp, out Chain chain, out FlatChain? fc, out int i, out FlatEntry[]? entries, out ChainIndex? index)
    {
        FlatFrame f = stack[--sp];
        chain = f.Chain;
        fc = f.Flat;
        i = f.Next;
        entries = f.Entries;
        index = f.Index;
    }

    /// <summary>
    /// Back in a calling chain: trusted, its entries and index as they were when the walk left it (kept in the return
    /// point: no read of the chain's flat form); else checked again (a target may not change rules, but stay exact).
    /// </summary>
    private static void Return(CompiledRules compiled, bool trusted, Chain chain, FlatChain? fc, ref FlatEntry[]? entries, ref ChainIndex? index, out int count)
    {
        if (trusted && entries is not null)
        {
            count = entries.Length;
            return;
        }
        Enter(compiled, chain, fc, out entries, out index, out count);
    }

    /// <summary>The entries (null: the rule objects) and index the walk uses in <paramref name="chain"/>.</summary>
    private static void Enter(CompiledRules compiled, bool trusted, Chain chain, FlatChain? fc, out FlatEntry[]? entries, out ChainIndex? index, out int count)
    {
        if (trusted && fc is not null)
        {
            entries = fc.Entries;
            index = fc.Index;
            count = entries.Length;
            return;
        }
        Enter(compiled, chain, fc, out entries, out index, out count);
    }

    /// <summary>The entries (null: the rule objects) and index the walk uses in <paramref name="chain"/>, checked against the chain's edits.</summary>
    private static void Enter(CompiledRules compiled, Chain chain, FlatChain? fc, out FlatEntry[]? entries, out ChainIndex? index, out int count)
    {
        entries = fc is null ? null : compiled.EntriesOf(fc);
        index = entries is not null ? fc!.IndexInStep(chain) : compiled.For(chain);
        count = entries?.Length ?? chain.Rules.Count;
    }

    /// <summary>
    /// A rule's condition from its flat entry (the packet has a flow key): ip_packet_match's IPv4 part, then the matches
    /// in the rule's order, inline ones from the entry, the others through their <see cref="MatchUse"/>.
    /// </summary>
    private static bool MatchFlat(PacketContext ctx, in FlatEntry e, in FlowKey key)
    {
        // In the network: equal above the shift (a 64-bit shift, so that 32, any address, leaves nothing to compare).
        if ((((ulong)(key.Source ^ e.Source) >> e.SourceShift) == 0) == ((e.Flags & FlatFlags.SourceInverted) != 0)) return false;
        if ((((ulong)(key.Destination ^ e.Destination) >> e.DestinationShift) == 0) == ((e.Flags & FlatFlags.DestinationInverted) != 0)) return false;
        if ((e.Flags & FlatFlags.Protocol) != 0 && ((key.Protocol == e.Protocol) == ((e.Flags & FlatFlags.ProtocolInverted) != 0))) return false;
        uint ops = e.Ops;
        for (int m = 0; ops != 0; m++, ops >>= 4)
        {
            switch ((FlatOp)(ops & 0xF))
            {
                case FlatOp.Skip:
                    break;
                case FlatOp.Ports:
                    // The rule's -p tcp/udp matched and the key has that header (FlowKey.TryRead).
                    // A: the source range, B: the destination range (low 16 bits the lowest port, high 16 bits the highest).
                    if (key.SourcePort < (ushort)e.A || key.SourcePort > e.A >> 16) return false;
                    if (key.DestinationPort < (ushort)e.B || key.DestinationPort > e.B >> 16) return false;
                    break;
                case FlatOp.Mark:
                    if ((ctx.Skb.Mark & e.B) != e.A) return false;
                    break;
                case FlatOp.MarkInverted:
                    if ((ctx.Skb.Mark & e.B) == e.A) return false;
                    break;
                case FlatOp.Random:
                    if (!StatisticMatch.RandomMode(ctx, e.A, invert: false)) return false;
                    break;
                case FlatOp.RandomInverted:
                    if (!StatisticMatch.RandomMode(ctx, e.A, invert: true)) return false;
                    break;
                default:
                {
                    MatchUse use = e.Rule.Matches[m];
                    if (use.Extension.MatchesEveryPacket) break;
                    ctx.Slot = m;
                    if (!use.Extension.Match(ctx, use.Data) || ctx.HotDrop) return false;
                    break;
                }
            }
        }
        return true;
    }
}
