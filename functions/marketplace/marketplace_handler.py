"""HTTP entry point of the marketplace resource group: parse, call one logic function, shape the answer.

Browse and get are public (template.yaml routes them without the authorizer): they take no principal.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import Depends, Query, Response

from bloxserver.api import create_app, current_principal, lambda_handler
from bloxserver.auth import Principal
from bloxserver.contract import (
    Flow,
    InstalledTool,
    MarketplaceListing,
    MarketplaceListingSummary,
    MarketplaceListingType,
    PaginatedResponse,
    PublishToMarketplaceRequest,
    RateListingRequest,
    UpdateMarketplaceListingRequest,
)
from bloxserver.pagination import PageRequest, page_query

import marketplace_logic

app = create_app("BloxServer marketplace")


@app.get("/api/v1/marketplace", response_model=PaginatedResponse[MarketplaceListingSummary])
async def browse(
    type: MarketplaceListingType | None = Query(None),
    category: str | None = Query(None),
    tag: str | None = Query(None),
    q: str | None = Query(None, max_length=200),
    sort: Literal["downloads", "rating", "newest"] = Query("downloads"),
    page: PageRequest = Depends(page_query(20)),
) -> PaginatedResponse[MarketplaceListingSummary]:
    return marketplace_logic.browse(type, category, tag, q, sort, page)


@app.get("/api/v1/marketplace/{listing_id}", response_model=MarketplaceListing)
async def get_listing(listing_id: UUID) -> MarketplaceListing:
    return marketplace_logic.get_listing(listing_id)


@app.post("/api/v1/marketplace", response_model=MarketplaceListing, status_code=201)
async def publish(
    body: PublishToMarketplaceRequest, principal: Principal = Depends(current_principal)
) -> MarketplaceListing:
    return marketplace_logic.publish(principal, body)


@app.patch("/api/v1/marketplace/{listing_id}", response_model=MarketplaceListing)
async def update_listing(
    listing_id: UUID, body: UpdateMarketplaceListingRequest, principal: Principal = Depends(current_principal)
) -> MarketplaceListing:
    return marketplace_logic.update_listing(principal, listing_id, body)


@app.delete("/api/v1/marketplace/{listing_id}", status_code=204)
async def delete_listing(listing_id: UUID, principal: Principal = Depends(current_principal)) -> Response:
    marketplace_logic.delete_listing(principal, listing_id)
    return Response(status_code=204)


@app.post("/api/v1/marketplace/{listing_id}/use", response_model=Flow, status_code=201)
async def use_template(listing_id: UUID, principal: Principal = Depends(current_principal)) -> Flow:
    return marketplace_logic.use_template(principal, listing_id)


@app.post("/api/v1/marketplace/{listing_id}/install", response_model=InstalledTool, status_code=201)
async def install_tool(
    listing_id: UUID, response: Response, principal: Principal = Depends(current_principal)
) -> InstalledTool:
    tool, created = marketplace_logic.install_tool(principal, listing_id)
    if not created:
        response.status_code = 200
    return tool


@app.post("/api/v1/marketplace/{listing_id}/rating", response_model=MarketplaceListing)
async def rate(
    listing_id: UUID, body: RateListingRequest, principal: Principal = Depends(current_principal)
) -> MarketplaceListing:
    return marketplace_logic.rate(principal, listing_id, body.stars)


@app.get("/api/v1/me/tools", response_model=PaginatedResponse[InstalledTool])
async def list_tools(
    page: PageRequest = Depends(page_query(20)), principal: Principal = Depends(current_principal)
) -> PaginatedResponse[InstalledTool]:
    return marketplace_logic.list_tools(principal, page)


@app.delete("/api/v1/me/tools/{listing_id}", status_code=204)
async def uninstall_tool(listing_id: UUID, principal: Principal = Depends(current_principal)) -> Response:
    marketplace_logic.uninstall_tool(principal, listing_id)
    return Response(status_code=204)


handler = lambda_handler(app)
