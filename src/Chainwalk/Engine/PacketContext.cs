using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// What a match or target sees while a packet walks a table (the kernel's xt_action_param plus the
/// namespace around it): the packet, the hook, the table, the host, the clock, the random source, and
/// where its own state lives. One per packet and hook, reused rule after rule.
/// </summary>
public sealed class PacketContext
{
    internal PacketContext(Netfilter netfilter, Skb skb)
    {
        Netfilter = netfilter;
        Skb = skb;
    }

    public Netfilter Netfilter { get; }

    /// <summary>Set while a walk is recorded for the flow path's memo (<see cref="Netfilter.FlowPath"/>): the walker reports each counter it moves.</summary>
    internal FlowWalkRecorder? Recording;

    /// <summary>Makes a reused context new for another packet or hook (the pipeline keeps one per nesting level).</summary>
    internal void Reset(Skb skb, Hook hook)
    {
        // References are stored only when they change: a packet's four hooks reuse the context with the same skb, and
        // each store of a reference costs a GC write barrier.
        if (!ReferenceEquals(Skb, skb)) Skb = skb;
        Hook = hook;
        if (Table.Length != 0) Table = "";
        RuleNumber = 0;
        if (Rule is not null) Rule = null;
        HotDrop = false;
        if (CurrentChain is not null) CurrentChain = null;
        RuleIndex = 0;
        Slot = 0;
    }

    public VirtualHost Host => Netfilter.Host;

    public RuntimeState State => Netfilter.State;

    /// <summary>Seconds on the host clock.</summary>
    public double Now
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => Netfilter.State.Now;
    }

    public Random Random => Netfilter.State.Random;

    public Skb Skb { get; internal set; }

    public Packet Packet => Skb.Packet;

    public IpFamily Family => Skb.Family;

    public Hook Hook { get; internal set; }

    public string Table { get; internal set; } = "";

    /// <summary>The chain of the rule being evaluated ("" before the first rule).</summary>
    public string Chain => CurrentChain?.Name ?? "";

    /// <summary>1-based number of the rule in <see cref="Chain"/>.</summary>
    public int RuleNumber { get; internal set; }

    public Rule? Rule { get; internal set; }

    /// <summary>The interface the packet came in by (null on OUTPUT and locally generated POSTROUTING).</summary>
    public string? InDev => Skb.InDev;

    /// <summary>The interface the packet leaves by (null on PREROUTING and INPUT).</summary>
    public string? OutDev => Skb.OutDev;

    /// <summary>
    /// Set by a match that finds the packet malformed in a way that makes the kernel drop it at once
    /// (par->hotdrop): the rule does not match and the packet is dropped.
    /// </summary>
    public bool HotDrop { get; set; }

    /// <summary>Where the current match or target sits: its chain, the rule's index, the match's index (-1 = the target).</summary>
    internal Chain? CurrentChain { get; set; }

    internal int RuleIndex { get; set; }

    internal int Slot { get; set; }

    /// <summary>The key of the current match's or target's state (stable across commands: table, chain, rule text, occurrence, position).</summary>
    public string StateKey => CurrentChain is null ? "" : Slot < 0
        ? StateKeys.Target(Table, CurrentChain, RuleIndex)
        : StateKeys.Match(Table, CurrentChain, RuleIndex, Slot);

    /// <summary>This rule's private state of the current match or target (the kernel's per-rule match data), created on first use.</summary>
    public T RuleState<T>(Func<T> create) where T : class => State.Get(StateKey, create);

    /// <summary>A per-namespace named object (recent table, hashlimit table …).</summary>
    public T Named<T>(string kind, string name, Func<T> create) where T : class => State.Get(kind + ":" + name, create);

    /// <summary>Writes a kernel log line (LOG target): kept with the packet's result.</summary>
    public void Log(string line, byte level = LogFormat.WarningLevel)
    {
        if (Netfilter.Current is not { } r) return;
        r.Logs.Add(line);
        r.LogLevels.Add(level);
    }

    /// <summary>
    /// Sends a packet the kernel builds (REJECT's reply, an ICMP error): it goes through OUTPUT and
    /// POSTROUTING now, as ip_local_out does, and its fate is recorded with the packet's outputs.
    /// <paramref name="routeFrom"/>, when given, is the packet it answers (PREROUTING replies are routed from it).
    /// </summary>
    public void SendLocal(byte[] ipPacket, Skb? routeFrom = null) => Netfilter.SendGenerated(ipPacket, routeFrom, this);

    /// <summary>
    /// Sends a copy of the packet to a gateway (TEE, nf_dup_ipv4 / nf_dup_ipv6): routed to <paramref name="gateway"/>
    /// (by <paramref name="oif"/> when given), through OUTPUT and POSTROUTING, recorded as an output of kind "tee".
    /// </summary>
    public bool SendDuplicate(Skb clone, UInt128 gateway, string? oif) => Netfilter.SendDuplicate(clone, gateway, oif);

    /// <summary>True while the packet is a TEE duplicate on its way out (nf_skb_duplicated).</summary>
    public bool Duplicating => Netfilter.Duplicating;

    /// <summary>
    /// Marks the packet's fate as rejected with REJECT's --reject-with name (the verdict itself is DROP).
    /// A packet the host generated (a REJECT reply meeting another REJECT rule in OUTPUT) does not change
    /// the fate of the packet it answers: the kernel rejected that one with the first rule's reply.
    /// </summary>
    public void Rejected(string rejectWith)
    {
        if (Netfilter.Current is { } r && !Netfilter.InGenerated) r.RejectedWith = rejectWith;
    }

    /// <summary>Adds a line to the explanation of the current rule (why a match decided, what a target changed).</summary>
    public void Note(string text) => Netfilter.Current?.Trace?.Add(new NoteEvent(text));

    /// <summary>The packet's headers were changed by a target: re-read and record the change.</summary>
    public void Changed(string what)
    {
        Skb.Reparse();
        Netfilter.Current?.Trace?.Add(new ChangeEvent(Table, Chain, RuleNumber, what));
    }
}
