using Chainwalk.Conntrack;

namespace Chainwalk.Engine;

/// <summary>
/// The per-packet calls into conntrack, made on the sealed <see cref="ConntrackHooks"/> directly when it is the tracker (as
/// the one pass calls <see cref="ConntrackHooks.Track"/>): a call through <see cref="IConntrackHooks"/> goes through a
/// virtual stub dispatch each time (the harness's code is fully optimised from the start, without the profile that would
/// guard a devirtualised call), and cannot be inlined. Any other implementation is called as before.
/// </summary>
public sealed partial class Netfilter
{
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void CtPacketStarts()
    {
        IConntrackHooks? c = Conntrack;
        if (c is ConntrackHooks h) h.PacketStarts();
        else c?.PacketStarts();
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private long CtPrefetch(ReadOnlySpan<byte> ipPacket)
    {
        IConntrackHooks? c = Conntrack;
        return c is ConntrackHooks h ? h.Prefetch(ipPacket) : c?.Prefetch(ipPacket) ?? -1;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void CtPrefetchMore(long token)
    {
        IConntrackHooks c = Conntrack!;
        if (c is ConntrackHooks h) h.PrefetchMore(token);
        else c.PrefetchMore(token);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private void CtPrefetchForward(Skb skb)
    {
        IConntrackHooks? c = Conntrack;
        if (c is ConntrackHooks h) h.PrefetchForward(skb);
        else c?.PrefetchForward(skb);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool CtTrack(IConntrackHooks c, PacketContext ctx) => c is ConntrackHooks h ? h.Track(ctx) : c.Track(ctx);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static uint? CtRoutedDestination4(IConntrackHooks c, Skb skb) => c is ConntrackHooks h ? h.RoutedDestination4(skb) : c.RoutedDestination4(skb);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool CtNeedsConfirm(IConntrackHooks c, Skb skb) => c is ConntrackHooks h ? h.NeedsConfirm(skb) : c.NeedsConfirm(skb);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool CtTryConfirmQuick(IConntrackHooks c, Skb skb, double now) => c is ConntrackHooks h ? h.TryConfirmQuick(skb, now) : c.TryConfirmQuick(skb, now);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool CtNeedsNatRules(IConntrackHooks c, PacketContext ctx) => c is ConntrackHooks h ? h.NeedsNatRules(ctx) : c.NeedsNatRules(ctx);

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool CtApplyNat(IConntrackHooks c, PacketContext ctx) => c is ConntrackHooks h ? h.ApplyNat(ctx) : c.ApplyNat(ctx);
}
