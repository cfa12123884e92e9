from django.urls import path

from accept_stack.views import SendMessage

urlpatterns = [path("api/v1/messages", SendMessage.as_view())]
